"""Restore drills end to end: a primary managing a simulated replica set (real agents) with projects changing
under a write load, backed up by a secondary through the real backing agent; ``opsmgr drill run`` on the
secondary's side restores the three stores into a sandbox (a DRILL restore job), starts a sandbox server on
them (its preflight passes with the primary's gen.key), proves with shadow agents that the sandbox ends on
the live primary's configuration (entering Restoration Mode when the restore point is older than the
live version) and reports to the secondary. Production is compared before and after: the backing windows gain
no hole, no alert opens on the secondary, the primary holds no restore record. A drill given another
gen.key fails at the sandbox's preflight, exits non-zero and opens BACKUP_DRILL_FAILED; ``drill history``
lists both, newest first; ``opsmgr backup verify`` passes after the first and names the failed drill after
the second."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmgr.restoration import record
from opsmgr.store import Store
from opsmgr.store.crypto import GenKey
from tests.configs import replica_set_config
from tests.deployments import Deployment
from tests.procs import run_cli, wait_for
from tests.secondary_support import SecondaryPair, now_ms, primary_with_secondary

pytestmark = pytest.mark.e2e


HOSTS = [f"d{i}.drill.sim" for i in range(3)]


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecondaryPair, Deployment]]:
    root = tmp_path_factory.mktemp("drill")
    with primary_with_secondary(root) as p:
        d = Deployment(p.primary, p.primary_key, root, "managed")
        try:
            for host in HOSTS:
                d.agent(host)
            d.wait_goal(d.put(replica_set_config(HOSTS, rs="rs0")), 3)
            p.wait_snapshots()
            p.wait_caught_up()
            yield p, d
        finally:
            d.close()


@pytest.fixture
def pair(managed: tuple[SecondaryPair, Deployment]) -> SecondaryPair:
    return managed[0]


def on_secondary(pair: SecondaryPair, *command: str, timeout: float = 60) -> Any:
    """``opsmgr COMMAND`` against the secondary's backing deployment."""
    key = pair.secondary_key
    return run_cli(
        *command,
        *("--url", pair.secondary.url, "--public-key", key["publicKey"], "--private-key", key["privateKey"]),
        *("--group", pair.group_id, "--cluster", pair.cluster_id),
        timeout=timeout,
    )


def drill(pair: SecondaryPair, gen_key: Path, *extra: str) -> Any:
    primary = ("--primary-url", pair.primary.url, "--primary-public-key", pair.primary_key["publicKey"])
    secret = ("--primary-private-key", pair.primary_key["privateKey"])
    return on_secondary(
        pair, "drill", "run", "--gen-key", str(gen_key), *primary, *secret, "--json", *extra, timeout=180
    )


def verify(pair: SecondaryPair) -> Any:
    """``opsmgr backup verify`` asking the windows to cover half of what the shortest one covers now (the
    pair is minutes old, and grooming moves a window's start with its oldest snapshot)."""
    starts = [s["pitrWindow"][-1]["startUTCMillis"] for s in pair.backing()["stores"]]
    hours = (now_ms() - max(starts)) / 2 / 3_600_000
    return on_secondary(pair, "backup", "verify", "--hours", f"{hours:.9f}")


def production(pair: SecondaryPair) -> dict[str, Any]:
    """What a drill must leave as it is: the backing windows' shape, the secondary's open alerts, the
    primary's restore record."""
    windows = {s["name"]: len(s["pitrWindow"]) for s in pair.backing()["stores"]}
    with pair.secondary_api() as api:
        alerts = api.get(f"/groups/{pair.group_id}/alerts", params={"status": "OPEN"}).json()["results"]
    app = Store(f"sqlite:///{pair.primary.data_dir / 'appdb.sqlite'}")
    try:
        restored = record.read(app)
    finally:
        app.close()
    return {"windows": windows, "alerts": sorted(a["eventTypeName"] for a in alerts), "record": restored}


def test_a_drill_under_load_passes_and_leaves_production_as_it_was(
    pair: SecondaryPair, tmp_path: Path
) -> None:
    before = production(pair)
    assert before["record"] is None
    stop = threading.Event()

    def write_load() -> None:
        with pair.primary.client(pair.primary_key) as api:
            i = 0
            while not stop.is_set():
                api.post("/groups", json={"name": f"under-load-{i}"})
                i += 1
                stop.wait(0.2)

    writer = threading.Thread(target=write_load)
    writer.start()
    try:
        done = drill(pair, pair.primary.data_dir / "gen.key", "--sandbox-dir", str(tmp_path / "sandbox"))
    finally:
        stop.set()
        writer.join(10)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["passed"], report
    assert [s["name"] for s in report["steps"]] == [
        "restore point",
        "live configuration",
        "restore into the sandbox",
        "shadow agents",
        "sandbox preflight and start",
        "reconcile",
    ]
    assert report["steps"][3]["detail"].startswith("3 simulated agent(s)"), report["steps"][3]
    assert report["rpoSeconds"] is not None and 0 <= report["rpoSeconds"] < 120, report
    assert report["rtoSeconds"] > 0 and set(report["storeBytes"]) == {"app", "snapshot", "oplog"}
    assert all(size > 0 for size in report["storeBytes"].values()), report["storeBytes"]
    assert not (tmp_path / "sandbox").exists(), "the sandbox is removed unless --keep"
    with pair.secondary_api() as api:
        base = f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}"
        job = api.get(f"{base}/restoreJobs/{report['restoreJobId']}").json()
    assert (job["purpose"], job["statusName"]) == ("DRILL", "FINISHED"), job
    pair.wait_caught_up()
    assert production(pair) == before, "a drill changes nothing in production"
    checked = verify(pair)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "last restore drill" in checked.stdout and "MISSING" not in checked.stdout, checked.stdout


def test_a_drill_to_a_point_before_the_live_version_reconciles_through_restoration_mode(
    managed: tuple[SecondaryPair, Deployment], tmp_path: Path
) -> None:
    pair, d = managed
    before_change = now_ms()
    config = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
    config["replicaSets"][0]["members"][1]["priority"] = 2
    live_version = d.put(config)
    d.wait_goal(live_version, 3)
    pair.wait_caught_up()
    sandbox = tmp_path / "sandbox"
    done = drill(
        pair,
        pair.primary.data_dir / "gen.key",
        "--point-in-time-ms",
        str(before_change),
        "--sandbox-dir",
        str(sandbox),
        "--keep",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["passed"] and report["restorePointUTCMillis"] == before_change, report
    log = (sandbox / "sandbox-server.log").read_text()
    assert "enters Restoration Mode" in log, "the older restore point made the sandbox reconcile in the mode"
    assert f"leaves Restoration Mode: config version {live_version} from" in log, log[-2000:]
    live = d.api.get(f"/groups/{d.group_id}/automationConfig").json()
    assert live["version"] == live_version, "production's configuration is untouched by the drill"


def test_a_drill_with_another_gen_key_fails_at_preflight_and_alerts(
    pair: SecondaryPair, tmp_path: Path
) -> None:
    wrong = tmp_path / "other-gen.key"
    GenKey.load_or_create(wrong)
    done = drill(pair, wrong)
    assert done.returncode != 0, done.stdout
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not report["passed"]
    failed = report["steps"][-1]
    assert failed["name"] == "sandbox preflight and start" and not failed["passed"], report
    with pair.secondary_api() as api:
        alerts = api.get(f"/groups/{pair.group_id}/alerts", params={"status": "OPEN"}).json()["results"]
        assert [a["eventTypeName"] for a in alerts if a["eventTypeName"] == "BACKUP_DRILL_FAILED"] == [
            "BACKUP_DRILL_FAILED"
        ]
    history = on_secondary(pair, "drill", "history")
    assert history.returncode == 0, history.stderr
    assert history.stdout.index("FAILED") < history.stdout.index("PASSED"), history.stdout
    checked = verify(pair)
    assert checked.returncode == 1 and "missing: last restore drill" in checked.stderr, checked.stderr


def _scheduled_drills(pair: SecondaryPair) -> None:
    """The secondary restarted with mms.backup.drill.* set: a drill due 10 s after the last one."""
    pair.secondary.stop()
    pair.secondary.set_conf(
        {
            "mms.backup.drill.intervalDays": str(20 / 86_400),
            "mms.backup.drill.genKeyPath": str(pair.primary.data_dir / "gen.key"),
            "mms.backup.drill.primaryUrl": pair.primary.url,
            "mms.backup.drill.primaryPublicKey": pair.primary_key["publicKey"],
            "mms.backup.drill.primaryPrivateKey": pair.primary_key["privateKey"],
        }
    )
    pair.secondary.start()


def test_the_secondary_runs_drills_on_its_schedule(pair: SecondaryPair) -> None:
    """With mms.backup.drill.* set, the secondary runs the drill itself (every half interval): a passing
    one appears in the history and closes the failed drill's alert."""
    with pair.secondary_api() as api:
        base = f"/groups/{pair.group_id}/backingDatabases/{pair.cluster_id}/drills"
        before = api.get(base).json()["totalCount"]
    _scheduled_drills(pair)
    with pair.secondary_api() as api:

        def scheduled() -> dict[str, Any] | None:
            drills = api.get(base).json()["results"]
            return drills[0] if len(drills) > before else None

        latest = wait_for(scheduled, 180, interval=1, what="a scheduled drill")
        assert latest["passed"], latest
        alerts = api.get(f"/groups/{pair.group_id}/alerts", params={"status": "OPEN"}).json()["results"]
        assert "BACKUP_DRILL_FAILED" not in [a["eventTypeName"] for a in alerts]
    logs = list((pair.secondary.data_dir / "drills").glob("drill-*.log"))
    assert logs and '"passed": true' in logs[0].read_text(), "the drill's output is kept beside the conf"


def _children(pid: int) -> list[int]:
    """Started by any of the process's threads (each thread lists its own)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_drill_under_way_ends_with_the_secondary_and_leaves_no_process(pair: SecondaryPair) -> None:
    """Last (it leaves the secondary stopped). A scheduled drill's sandbox server and shadow agents are the
    drill's children: the secondary stopped while one runs ends the drill, and the drill stops them (they
    ran on, orphaned, holding a copy of production's configuration on loopback)."""
    _scheduled_drills(pair)
    server = pair.secondary.proc
    assert server is not None

    def sandbox_under_way() -> tuple[int, list[int]] | None:
        for drill in _children(server.pid):
            if " drill run " in _cmdline(drill):
                started = [c for c in _children(drill) if " server " in _cmdline(c)]
                if started:
                    return drill, started
        return None

    drill, sandbox = wait_for(sandbox_under_way, 180, interval=0.2, what="a scheduled drill's sandbox server")
    pair.secondary.stop()
    for pid in (drill, *sandbox):
        wait_for(lambda pid=pid: not _running(pid), 60, interval=0.2, what=f"process {pid} ended")

