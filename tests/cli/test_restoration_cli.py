"""``opsmgr restoration-mode show | retry | exit`` through the real console script against a real server: a
project put in Restoration Mode by one agent poll claiming a newer config version than the server's; ``show``
human-readable and ``--json``; ``retry`` resets the counter; ``exit`` prints the seed's warning and is
refused without ``--yes`` or a typed yes; a read-only key's ``retry``/``exit`` and a project not in the mode
print the server's message and exit non-zero; keys from the environment as well as from options.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.configs import replica_set_config
from tests.procs import ServerProcess, run_cli

HOSTS = ["rmcli0.cli.sim", "rmcli1.cli.sim"]
WARNING = "it accepts the restored configuration without reconciling later agent configurations"


def _auth(server: ServerProcess, key: dict[str, Any]) -> list[str]:
    return ["--url", server.url, "--public-key", key["publicKey"], "--private-key", key["privateKey"]]


def _project(api: httpx.Client, name: str) -> tuple[str, str, int]:
    group = api.post("/groups", json={"name": name}).json()["id"]
    agent_key = api.post(f"/groups/{group}/agentapikeys", json={"desc": "cli"}).json()["key"]
    r = api.put(f"/groups/{group}/automationConfig", json=replica_set_config(HOSTS, "rsrm"))
    assert r.status_code == 200, r.text
    return group, agent_key, int(r.json()["version"])


def _enter_mode(server: ServerProcess, group: str, agent_key: str, version: int) -> None:
    """One agent polling with a config version above the server's: the project enters Restoration Mode."""
    poll = httpx.get(
        f"{server.url}/agents/api/automation/conf/v1/{group}",
        params={"hostname": HOSTS[0], "cv": version + 5},
        auth=httpx.BasicAuth(group, agent_key),
        verify=server.verify,
    )
    assert poll.status_code in (200, 304), poll.text


@pytest.fixture(scope="module")
def in_mode(server: ServerProcess, owner: dict[str, Any]) -> dict[str, Any]:
    with server.client(owner) as api:
        group, agent_key, version = _project(api, "cli-restoration-mode")
        calm, _, _ = _project(api, "cli-restoration-calm")
        reader = api.post(
            f"/groups/{group}/apiKeys", json={"desc": "reader", "roles": ["GROUP_READ_ONLY"]}
        ).json()
    _enter_mode(server, group, agent_key, version)
    return {"group": group, "calm": calm, "reader": reader, "version": version}


def test_show_prints_state_trigger_agents_and_failures(
    server: ServerProcess, owner: dict[str, Any], in_mode: dict[str, Any]
) -> None:
    group = in_mode["group"]
    done = run_cli("restoration-mode", "show", "--group", group, *_auth(server, owner))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "(in Restoration Mode)" in text and "state:" in text
    assert f"agent {HOSTS[0]} holds config version {in_mode['version'] + 5}" in text
    assert "since:" in text and "since:            -" not in text
    assert "agents heard:     1" in text and HOSTS[0] in text
    # A poll says which version an agent holds; only its status report makes its claim complete.
    assert "agents missing:   2" in text and f"{HOSTS[1]}  not heard from yet" in text
    assert "failure counter:  0" in text and "last failure:     -" in text

    # --json is the API's own answer; keys from the environment too.
    env = {"OPSMGR_URL": server.url, "OPSMGR_PUBLIC_KEY": owner["publicKey"]}
    env["OPSMGR_PRIVATE_KEY"] = owner["privateKey"]
    as_json = run_cli("restoration-mode", "show", "--group", group, "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    view = json.loads(as_json.stdout)
    with server.client(owner) as api:
        api_view = api.get(f"/groups/{group}/restorationMode").json()
    assert view["inRestorationMode"] is True and view["state"] == api_view["state"]
    assert view["triggerReason"] == api_view["triggerReason"]
    assert [a["hostname"] for a in view["agentsHeard"]] == [HOSTS[0]]


def test_a_project_not_in_the_mode_shows_inactive_and_refuses_retry_and_exit(
    server: ServerProcess, owner: dict[str, Any], in_mode: dict[str, Any]
) -> None:
    calm, auth = in_mode["calm"], _auth(server, owner)
    shown = run_cli("restoration-mode", "show", "--group", calm, *auth)
    assert shown.returncode == 0 and "state:            INACTIVE" in shown.stdout
    for command in (["retry"], ["exit", "--yes"]):
        refused = run_cli("restoration-mode", *command, "--group", calm, *auth)
        assert refused.returncode == 1, refused.stdout
        assert f"Project {calm} is not in Restoration Mode." in refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_read_only_key_may_show_but_not_retry_or_exit(
    server: ServerProcess, in_mode: dict[str, Any]
) -> None:
    group, auth = in_mode["group"], _auth(server, in_mode["reader"])
    assert run_cli("restoration-mode", "show", "--group", group, *auth).returncode == 0
    for command in (["retry"], ["exit", "--yes"]):
        refused = run_cli("restoration-mode", *command, "--group", group, *auth)
        assert refused.returncode == 1 and "HTTP 403" in refused.stderr, refused.stderr


def test_retry_then_exit_needs_a_confirmation_and_prints_the_seeds_warning(
    server: ServerProcess, owner: dict[str, Any], in_mode: dict[str, Any]
) -> None:
    group, auth = in_mode["group"], _auth(server, owner)
    retried = run_cli("restoration-mode", "retry", "--group", group, "--json", *auth)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["failureCount"] == 0

    # No --yes: answered no, or no answer at all (stdin closed), leaves the mode as it was.
    for answer in ("n\n", ""):
        declined = run_cli("restoration-mode", "exit", "--group", group, *auth, stdin=answer)
        assert declined.returncode == 1, declined.stdout
        assert WARNING in " ".join(declined.stderr.split())
        assert "not forced" in declined.stderr
    with server.client(owner) as api:
        assert api.get(f"/groups/{group}/restorationMode").json()["inRestorationMode"] is True

    confirmed = run_cli("restoration-mode", "exit", "--group", group, *auth, stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert WARNING in " ".join(confirmed.stderr.split())
    assert "forced out of Restoration Mode" in confirmed.stdout
    with server.client(owner) as api:
        after = api.get(f"/groups/{group}/restorationMode").json()
    assert after["state"] in ("FORCED_EXIT_CONVERGING", "INACTIVE"), after


@pytest.mark.parametrize("group", ["../orgs", "x" * 5000, "%2e%2e"])
def test_a_forged_group_is_one_path_segment_and_a_clean_refusal(
    server: ServerProcess, owner: dict[str, Any], group: str
) -> None:
    for command in (["show"], ["exit", "--yes"]):
        refused = run_cli("restoration-mode", *command, "--group", group, *_auth(server, owner))
        assert refused.returncode == 1, refused.stdout
        assert "HTTP 4" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr


def test_show_of_a_failed_reconciliation_and_of_an_armed_project() -> None:
    """States the quick server tests do not reach, from answers in the API's shape."""
    from opsmgr.cli.restoration import describe

    failed = describe(
        {
            "groupId": "g",
            "state": "RETRY_WAIT",
            "inRestorationMode": True,
            "failureCount": 3,
            "lastFailure": {"at": "2026-12-05T22:24:55Z", "reason": "agents disagree"},
            "nextAttemptAt": "2026-12-05T22:30:00.000Z",
            "missingHosts": [{"hostname": "h1", "reason": "unreachable"}],
        }
    )
    assert (
        "failure counter:  3" in failed
        and "last failure:     2026-12-05T22:24:55Z: agents disagree" in failed
    )
    assert "  h1  unreachable" in failed and "next attempt:     2026-12-05T22:30:00.000Z" in failed
    armed = describe(
        {"state": "ARMED", "armed": True, "armedBy": {"restoreJobId": "j1"}, "awaitingHosts": ["h1", "h2"]}
    )
    assert any("by restore job j1" in line for line in armed)
    assert "  awaiting the first poll of: h1, h2" in armed
