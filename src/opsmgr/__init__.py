"""opsmgr: an open-source control plane for self-managed MongoDB.

Packages, one per area: ``store`` (backing databases and their oplog, gen.key, installation record),
``automation`` (automation configs: validation, diffing, status), ``maintenance`` (rolling restarts),
``backup`` (slices, snapshots, blocks, PITR), ``restoration`` (Restoration Mode), ``server`` (HTTP: public
API, agent API, UI), ``agent`` (the reconcile loop), ``drivers`` (the narrow interface to ``mongod``),
``sim`` (simulated MongoDB hosts) and ``cli`` (the ``opsmgr`` command).
"""

__version__ = "0.1.0"
