"""The secondary down, seen from the primary: ``opsmgr secondary attach`` records the secondary on the
primary, the primary probes it, and once it has failed for longer than
``mms.backup.alerts.secondaryUnreachableSeconds`` (shortened here) the global alert
``BACKUP_SECONDARY_UNREACHABLE`` is served at ``/globalAlerts`` to org-level keys, while the primary and its
agents keep working; when the secondary is back the alert closes and backup resumes with no gap (each store's
window is one range)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from opsmgr.backup.secondaries import secondaries
from opsmgr.server.settings import embedded_defaults
from opsmgr.store import Store
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import wait_for
from tests.secondary_support import primary_with_secondary

pytestmark = pytest.mark.e2e

HOSTS = [f"w{i}.secondary-alerts.sim" for i in range(3)]
THRESHOLD_S = 2.0


def _global_alerts(client: Any, status: str | None = None) -> list[dict[str, Any]]:
    r = client.get("/globalAlerts", params={"status": status} if status else {})
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_the_primary_raises_a_global_alert_while_its_secondary_is_down(tmp_path: Path) -> None:
    # The primary's embedded setup is made first, so its threshold can be shortened before it starts.
    settings, _ = embedded_defaults(tmp_path / "primary")
    assert settings.conf_path is not None
    with open(settings.conf_path, "a", encoding="utf-8") as conf:
        conf.write(f"\nmms.backup.alerts.secondaryUnreachableSeconds={THRESHOLD_S}\n")

    with primary_with_secondary(tmp_path) as pair:
        d = Deployment(pair.primary, pair.primary_key, tmp_path, "managed")
        reader = pair.primary.create_key("ORG_READ_ONLY")
        project_only = pair.primary.create_key("GROUP_READ_ONLY", group_id=d.group_id)
        api = pair.primary.client(pair.primary_key)
        try:
            for host in HOSTS:
                d.agent(host)
            v1 = d.put(replica_set_config(HOSTS, rs="rs0"))
            d.wait_goal(v1, 3)
            pair.wait_snapshots()

            # attach recorded the secondary on the primary; it answers, so nothing is open.
            store = Store(f"sqlite:///{pair.primary.data_dir / 'appdb.sqlite'}")
            try:
                recorded = secondaries(store)
            finally:
                store.close()
            assert [(s["url"], s["groupId"], s["clusterId"]) for s in recorded] == [
                (pair.secondary.url, pair.group_id, pair.cluster_id)
            ]
            assert _global_alerts(api) == []

            # The secondary goes down: after the threshold, the primary's operator is told.
            # Timed from the stop's start: a clean stop stops answering before its process has exited.
            stopped = time.monotonic()
            pair.secondary.stop()
            alert = wait_for(
                lambda: next(iter(_global_alerts(api, "OPEN")), None),
                THRESHOLD_S + 20,
                interval=0.2,
                what="BACKUP_SECONDARY_UNREACHABLE on the primary",
            )
            assert time.monotonic() - stopped > THRESHOLD_S
            assert alert["eventTypeName"] == "BACKUP_SECONDARY_UNREACHABLE"
            assert alert["status"] == "OPEN" and "resolved" not in alert
            assert "groupId" not in alert and alert["typeName"] == "BACKUP"
            assert alert["secondaryUrl"] == pair.secondary.url
            assert alert["secondaryGroupId"] == pair.group_id and alert["clusterId"] == pair.cluster_id
            assert pair.secondary.url in alert["message"] and "paused" in alert["message"]
            assert api.get(f"/globalAlerts/{alert['id']}").json()["id"] == alert["id"]
            with pair.primary.client(reader) as ro:
                assert [a["id"] for a in _global_alerts(ro)] == [alert["id"]]
            with pair.primary.client(project_only) as p:
                assert p.get("/globalAlerts").status_code == 403
                assert p.get(f"/globalAlerts/{alert['id']}").status_code == 403
            assert api.get("/globalAlerts", params={"status": "CLOSED"}).json()["totalCount"] == 0

            # The primary and its agents carry on: a config change still reaches goal.
            config = api.get(f"/groups/{d.group_id}/automationConfig").json()
            config["replicaSets"][0]["members"][1]["priority"] = 2
            v2 = d.put(config)
            d.wait_goal(v2, 3)
            assert [a["id"] for a in _global_alerts(api, "OPEN")] == [alert["id"]]  # one alert, refreshed

            # Back: the alert closes and backup resumes from where it stopped, with no gap.
            pair.secondary.start()
            closed = wait_for(
                lambda: next((a for a in _global_alerts(api, "CLOSED") if a["id"] == alert["id"]), None),
                30,
                interval=0.2,
                what="the alert to close",
            )
            assert closed["resolved"] is not None
            assert _global_alerts(api, "OPEN") == []
            pair.wait_caught_up()
            for source in pair.backing()["stores"]:
                assert len(source["pitrWindow"]) == 1, f"a hole in the {source['name']} window: {source}"
        finally:
            api.close()
            d.close()
