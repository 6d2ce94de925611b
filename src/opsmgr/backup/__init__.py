"""Continuous backup: the daemon's side of snapshots, oplog slices, heads, the PITR window and restores.

A **source** is one database of a project's deployment that is backed up: a replica set (sim or ``mongod``)
or one of a server's backing databases. Its agent ships an initial sync and then **slices** of its oplog; the
daemon applies them to a **head** copy of the source and takes **snapshots** from the head, so a snapshot is
consistent with an oplog position by construction. Snapshots are content-addressed **blocks** in the
blockstore (a folder), their block lists in the snapshot metadata store; slice data are blocks too, their
ranges in the oplog metadata store.

Modules, from the bottom up (the pure ones import nothing of opsmgr but ``opsmgr.errors`` and
``opsmgr.timestamps``):

- ``errors`` (pure): what a restore or an upload can be refused with, and its HTTP status.
- ``positions`` (pure): oplog positions of both kinds of source and their time shapes in Ops Manager's API.
- ``changes`` (pure): oplog entries of both kinds normalised into one applied form, and their encoding.
- ``pitr`` (pure): the PITR window as ranges with holes, and restore planning.
- ``policy`` (pure): snapshot schedule, retention and what grooming may delete.
- ``wire`` (pure but for ``opsmgr.strictjson``): an oplog slice's wire format, which the agent encodes.
- ``blockstore``: content-addressed, compressed, checksummed block files.
- ``snapshots``, ``slices``, ``head``, ``restore``: the metadata stores, the head copies and restores.
- ``daemon``: the :class:`~opsmgr.backup.daemon.BackupDaemon` the server drives.
- ``clusters``: backed-up clusters and their backup configurations.
- ``sharded`` (pure), ``sharded_backups``: a sharded cluster backed up as its parts, its window the
  intersection of theirs, its snapshots and restores at one point for every part.
- ``jobs``: restore jobs of both kinds (a deployment's, the backing databases') as one state machine.

The package may import ``opsmgr.errors``, ``opsmgr.strictjson``, ``opsmgr.store``, ``opsmgr.timestamps``,
``opsmgr.automation.protocol`` (the change agents' work announces) and ``opsmgr.automation.clusters`` (a
config's sharded clusters); never the web framework or ``opsmgr.server``.
"""
