"""How commands reach a running ``opsmgr demo``: its record (``demo.json`` in its data dir) and its control
file.

The demo's process owns its children; a command never starts or stops them itself. It writes a request
(``control.json``: an id and an action, 0600) that the demo's supervisor picks up within a fraction of a
second, and waits until the record names that request as handled, with the outcome (the primary's state, or
the error that stopped the action). A demo that is not running (its pid gone) answers nothing: the command
says so instead of waiting. Both files are written atomically and readable by their owner only: the record
holds the demo's keys.

May import ``opsmgr.errors`` and ``opsmgr.agent.state`` (its atomic, private write).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import time
from pathlib import Path
from typing import Any

from opsmgr.agent.state import atomic_write
from opsmgr.errors import InvalidInput, OpsmgrError

DEMO_MARKER = "demo.json"
CONTROL_FILE = "control.json"
PRIMARY_ACTIONS = ("stop", "start")
# A start waits for the server's preflight (every store page checked) and its first readiness answer.
REQUEST_TIMEOUT_S = 120.0


class DemoNotRunning(OpsmgrError):
    pass


def write_record(data_dir: Path, record: dict[str, Any]) -> None:
    atomic_write(data_dir / DEMO_MARKER, (json.dumps(record, indent=2) + "\n").encode())


def read_record(data_dir: Path) -> dict[str, Any]:
    """The record of the demo in ``data_dir``; InvalidInput naming the dir when there is none (yet)."""
    path = data_dir / DEMO_MARKER
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InvalidInput(
            f"no demo in {data_dir} ({DEMO_MARKER} is written once `opsmgr demo` is ready); "
            "give its --data-dir",
            field="--data-dir",
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", field="--data-dir") from None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took the pid: not our demo
        return False
    return True


def running_record(data_dir: Path) -> dict[str, Any]:
    """The record of a demo whose supervisor still runs."""
    record = read_record(data_dir)
    if not alive(int(record.get("pid", 0))):
        raise DemoNotRunning(f"the demo in {data_dir} is not running; start it with `opsmgr demo`")
    return record


def send_request(data_dir: Path, action: str) -> str:
    """Ask the running demo to act; returns the request's id."""
    request_id = secrets.token_hex(8)
    atomic_write(data_dir / CONTROL_FILE, json.dumps({"id": request_id, "action": action}).encode())
    return request_id


def pending_request(data_dir: Path, handled: str | None) -> dict[str, str] | None:
    """The request in the control file when it is a new one (not ``handled``); a torn or foreign file is
    ignored (the supervisor must not die of a bad file)."""
    try:
        request = json.loads((data_dir / CONTROL_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(request, dict) or request.get("id") == handled:
        return None
    if not isinstance(request.get("id"), str) or not isinstance(request.get("action"), str):
        return None
    return {"id": request["id"], "action": request["action"]}


def await_outcome(data_dir: Path, request_id: str, timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
    """The record once the demo handled ``request_id``; DemoNotRunning when the demo ends meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = running_record(data_dir)
        if record.get("handled") == request_id:
            return record
        time.sleep(0.2)
    raise OpsmgrError(f"the demo in {data_dir} did not answer within {timeout:.0f}s")


def primary_request(data_dir: Path, action: str) -> dict[str, Any]:
    """Stop or start the demo's primary server and wait for the outcome: the primary's record, or the
    reason it could not (for a start, the server's own refusal is in its log, which the error names)."""
    if action not in PRIMARY_ACTIONS:
        raise InvalidInput(f"the primary can be {' or '.join(PRIMARY_ACTIONS)}ed, not {action!r}")
    running_record(data_dir)
    record = await_outcome(data_dir, send_request(data_dir, f"primary {action}"))
    primary = dict(record["primary"])
    if primary.get("error"):
        raise OpsmgrError(str(primary["error"]))
    return primary


def shell_exports(record: dict[str, Any], *, secondary: bool) -> str:
    """``export`` lines for a shell: the API commands' OPSMGR_* variables (the primary's, or the
    secondary's), and DEMO_* ids the walk in README.md uses. Keys go in the environment, never argv."""
    side = record["secondary"] if secondary else record
    values = {
        "OPSMGR_URL": side["url"],
        "OPSMGR_PUBLIC_KEY": side["publicKey"],
        "OPSMGR_PRIVATE_KEY": side["privateKey"],
        "OPSMGR_GROUP": side["groupId"],
        "DEMO_URL": record["url"],
        "DEMO_GROUP": record["groupId"],
        "DEMO_CLUSTER": record["clusterId"],
        "DEMO_PRIMARY_DATA_DIR": record["primary"]["dataDir"],
        "DEMO_SECONDARY_URL": record["secondary"]["url"],
        "DEMO_SECONDARY_GROUP": record["secondary"]["groupId"],
        "DEMO_BACKING_CLUSTER": record["secondary"]["clusterId"],
    }
    return "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in values.items())
