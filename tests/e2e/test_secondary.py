"""The seed's procedure end to end: a primary with agents and a simulated deployment, backed up by a secondary
(its three backing databases, through ``opsmgr secondary attach`` and the backing-database agent); changes;
the failure table (the secondary down: the primary and its agents carry on and backup pauses; back: backup
resumes with no gap); a disaster (the primary stopped, its stores deleted); the restore of all three stores
through the secondary to a chosen instant with ``opsmgr backup restore-stores``, refused while the primary
runs, carried out by the backing agent on the primary's host (its fences removed after; killed mid-way in
``test_agent_restore``); the primary started on the restored stores
serving the state of that instant; the secondary failing after the restore has no effect on the primary.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from opsmgr.timestamps import iso_utc
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import OPSMGR
from tests.secondary_support import fences, now_ms, primary_with_secondary

pytestmark = pytest.mark.e2e

HOSTS = [f"p{i}.secondary.sim" for i in range(3)]


def test_restore_the_primary_from_its_secondary(tmp_path: Path) -> None:
    with primary_with_secondary(tmp_path) as pair:
        d = Deployment(pair.primary, pair.primary_key, tmp_path, "managed")
        try:
            for host in HOSTS:
                d.agent(host)
            v1 = d.put(replica_set_config(HOSTS, rs="rs0"))
            d.wait_goal(v1, 3)
            pair.wait_snapshots()

            # The instant T to restore to: the project's config is at v2 then.
            config = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
            config["replicaSets"][0]["members"][1]["priority"] = 2
            v2 = d.put(config)
            time.sleep(0.01)  # T strictly after v2's commit, at millisecond resolution
            at = now_ms()
            pair.wait_caught_up()

            # The secondary goes down: the primary and its agents carry on (v3 reaches goal), backup pauses.
            pair.secondary.stop()
            config["replicaSets"][0]["members"][2]["priority"] = 3
            v3 = d.put(config)
            d.wait_goal(v3, 3)
            later_group = d.api.post("/groups", json={"name": "after-T"}).json()["id"]
            # Back: backup resumes from where it stopped, with no gap.
            pair.secondary.start()
            pair.wait_caught_up()
            for store in pair.backing()["stores"]:
                assert len(store["pitrWindow"]) == 1, f"a hole in the {store['name']} window: {store}"

            # Refused while the primary runs, naming it.
            refused = pair.restore("--point-in-time-ms", str(at), "--yes")
            assert refused.returncode != 0
            assert "the primary is running" in refused.stderr and pair.primary.url in refused.stderr

            # The disaster: the primary stopped, its stores lost (agents keep running).
            pair.stop_primary()
            pair.stop_agent()  # the primary's host is lost with them
            pair.lose_stores()
            # The host provisioned again with the backing agent's config: it carries the restore out.
            pair.start_agent()

            # The restore, with confirmation, through the front-end following the agent's job.
            proc = subprocess.Popen(
                [*OPSMGR, *pair.restore_args("--at", iso_utc(at))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                out, errs = proc.communicate("y\n", timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 0, out + errs
            assert "Replace the primary's backing databases now?" in errs, errs
            assert "Start the primary now." in out, out
            job = out.split("(restore job ")[1].split(")")[0]
            done = pair.job(job)
            assert done["statusName"] == "FINISHED" and done["delivery"] == "AGENT", done
            assert done["progress"]["phase"] == "DONE" and done["outcome"]["stores"]["app"]["documents"] > 0
            assert fences(pair) == {"app": None, "snapshot": None, "oplog": None}

            # The primary starts on the restored stores and serves the state of T.
            pair.primary.start()
            api = pair.primary.client(pair.primary_key)
            assert api.get(f"/groups/{d.group_id}/automationConfig").json()["version"] == v2
            assert api.get(f"/groups/{later_group}").status_code == 404
            # The restore left its record: the project was armed before anything was served.
            mode = api.get(f"/groups/{d.group_id}/restorationMode").json()
            assert mode["armedAt"] and mode["armedBy"]["restoreJobId"] == job, mode
            api.close()

            # The secondary resyncs the restored stores; then it fails: no effect on the primary.
            pair.wait_caught_up()
            pair.secondary.stop()
            assert httpx.get(f"{pair.primary.url}/health/ready", timeout=5).status_code == 200
            with pair.primary.client(pair.primary_key) as api:
                assert api.get(f"/groups/{d.group_id}").status_code == 200
        finally:
            d.close()
