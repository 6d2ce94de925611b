"""The adoption record: the hosts an operator named when a project was adopted from its agents
(``restoration.adopt``), read by Restoration Mode to know which agents speak for a project this server has no
config of yet, and which of them reconciliation must hear before it chooses.

Owns the ``adoptions`` collection (one document per adopted project, ``_id`` the project id). May import
``opsmgr.errors`` and ``opsmgr.store``.
"""

from __future__ import annotations

from collections.abc import Iterable

from opsmgr.errors import Conflict
from opsmgr.store.engine import Store, Txn

ADOPTIONS = "adoptions"


def write(t: Txn, group_id: str, hosts: list[str], adopted_at_ms: int) -> None:
    # Put, not insert: a project deleted before it had a config of its own can be adopted again.
    t.put(ADOPTIONS, {"_id": group_id, "hosts": sorted(hosts), "adoptedAt": adopted_at_ms})


def named_hosts(source: Store | Txn, group_id: str) -> list[str]:
    """The hosts named when ``group_id`` was adopted (none for a project that was not)."""
    doc = source.get(ADOPTIONS, group_id)
    return [str(h) for h in doc.get("hosts") or []] if doc is not None else []


def awaited(named: list[str], heard: Iterable[str]) -> set[str]:
    """The named hosts reconciliation still waits for beside those heard: a host named in another case than
    its agent reports is the same host (host names compare case-insensitively), heard under the agent's."""
    spoken = {h.lower() for h in heard}
    return {h for h in named if h.lower() not in spoken}


def refuse_empty_exit(source: Store | Txn, group_id: str, version: int) -> None:
    """Refuse to force an adopted project out of the mode while it has no config of its own: the forced exit
    would serve the empty config of the adoption, and every agent would stop every process."""
    if version == 0 and named_hosts(source, group_id):
        raise Conflict(
            f"Project {group_id} was adopted and has no configuration yet: a forced exit would serve an "
            "empty configuration and the agents would stop every process. Bring the agents of "
            "the named hosts back (or retry) so that reconciliation takes the configuration from them.",
            error_code="ADOPTED_PROJECT_HAS_NO_CONFIG",
        )
