"""On a primary: the secondaries that back up its backing databases, and whether each one answers.

``opsmgr secondary attach`` records the secondary in the primary's application database (collection
``backup_secondaries``: ``{_id, url, groupId, clusterId, attachedAt, caFile}``, one document per secondary
URL; ``caFile``, when set, is the CA that signed an HTTPS secondary's certificate), so the primary knows it
is backed up and by whom. The primary's periodic work probes each recorded secondary's
readiness (``/health/ready``); :class:`SecondaryWatch` turns the outcomes into the **global** alert
``BACKUP_SECONDARY_UNREACHABLE`` (project id :data:`GLOBAL_GROUP_ID`, reserved: no project has it) once a
secondary has failed for longer than ``AlertPolicy.secondary_unreachable_ms``, and resolves it when the
secondary answers again. While it is open, the secondary receives nothing: backups of the primary's stores
and restores from the secondary are paused (the backing agent resumes where the secondary acknowledged).

Failure is counted from the first failed probe this process made, so after a restart of the primary the
threshold runs again before an alert opens; an alert a previous process left open for a secondary that now
answers is resolved at the first probe.

May import ``opsmgr.backup.alerts``, ``opsmgr.store`` and ``opsmgr.timestamps``; the probe itself (HTTP) is
the caller's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmgr.backup.alerts import AlertPolicy, AlertSink
from opsmgr.store.engine import Store
from opsmgr.timestamps import iso_utc

SECONDARIES = "backup_secondaries"
# Alerts about the installation itself rather than one of its projects (served as globalAlerts).
GLOBAL_GROUP_ID = "000000000000000000000000"
UNREACHABLE = "BACKUP_SECONDARY_UNREACHABLE"

Probe = Callable[[str], str | None]  # url -> None when ready, else what went wrong


def _doc_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:24]


def record_secondary(
    store: Store,
    url: str,
    group_id: str,
    cluster_id: str,
    now_ms: int,
    *,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """Records (or updates) the secondary at ``url`` in the primary's application database ``store``;
    ``ca_file`` is what the primary's probe trusts for the secondary's HTTPS certificate."""
    doc = {
        "_id": _doc_id(url.rstrip("/")),
        "url": url.rstrip("/"),
        "groupId": group_id,
        "clusterId": cluster_id,
        "attachedAt": now_ms,
        "caFile": str(ca_file.resolve()) if ca_file is not None else None,
    }
    store.put(SECONDARIES, doc)
    return doc


def secondaries(store: Store) -> list[dict[str, Any]]:
    return sorted(store.find(SECONDARIES), key=lambda d: d["url"])


def alert_key(url: str) -> str:
    return f"backup-secondary:{url}"


@dataclass
class ProbeState:
    failing_since_ms: int | None = None
    error: str | None = None
    last_probe_ms: int | None = None
    alerted: bool = False


def unreachable_message(url: str, state: ProbeState) -> str:
    since = iso_utc(state.failing_since_ms or 0)
    return (
        f"the secondary at {url} has failed its readiness check since {since} ({state.error}): "
        "backups of this server's backing databases and restores from the secondary are paused"
    )


class SecondaryWatch:
    """Probes the recorded secondaries and keeps their global alerts in step (see the module docstring)."""

    def __init__(self, sink: AlertSink, probe: Probe, policy: AlertPolicy | None = None) -> None:
        self.sink = sink
        self.probe = probe
        self.policy = policy or AlertPolicy()
        self.states: dict[str, ProbeState] = {}

    @property
    def probe_interval_ms(self) -> int:
        """A few probes within the threshold, and no more than one every 5 s."""
        return min(5000, self.policy.secondary_unreachable_ms // 4)

    def run(self, recorded: Iterable[dict[str, Any]], now_ms: int) -> dict[str, ProbeState]:
        seen = set()
        for doc in recorded:
            url = str(doc["url"])
            seen.add(url)
            state = self.states.get(url)
            if state is None:
                state = self.states[url] = ProbeState(alerted=True)  # resolve what an earlier process left
            if state.last_probe_ms is not None and now_ms - state.last_probe_ms < self.probe_interval_ms:
                continue
            state.last_probe_ms = now_ms
            error = self.probe(url)
            if error is None:
                state.failing_since_ms, state.error = None, None
                if state.alerted:
                    self.sink.resolve(GLOBAL_GROUP_ID, alert_key(url))
                    state.alerted = False
                continue
            if state.failing_since_ms is None:
                state.failing_since_ms = now_ms
            state.error = error
            if now_ms - state.failing_since_ms > self.policy.secondary_unreachable_ms:
                self.sink.raise_alert(
                    GLOBAL_GROUP_ID,
                    UNREACHABLE,
                    alert_key(url),
                    unreachable_message(url, state),
                    typeName="BACKUP",
                    secondaryUrl=url,
                    secondaryGroupId=doc.get("groupId"),
                    clusterId=doc.get("clusterId"),
                )
                state.alerted = True
        for url in set(self.states) - seen:  # detached: nothing is expected of it any more
            if self.states.pop(url).alerted:
                self.sink.resolve(GLOBAL_GROUP_ID, alert_key(url))
        return self.states
