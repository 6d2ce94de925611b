"""The contract suite: every public route's answer against a JSON schema written from Ops Manager's API
reference (``schemas/``, one file per resource, each naming the reference page it was written from; the
resources only opsmgr has say "opsmgr-only" and follow opsmgr's documented shape).

One real server holds one of every resource (``world.py``). The routes come from the server's own OpenAPI
document, so a route added without a case here fails :func:`test_every_public_route_has_a_case`. Each case
checks the answer of a GET, or of the POST/PATCH/PUT that made the resource; a case whose answer is known not
to follow the reference yet is a strict xfail naming the mismatch, so an XPASS says it has been fixed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from tests.contract.world import World, built_world
from tests.procs import ServerProcess

PREFIX = "/api/public/v1.0"
URN = "urn:opsmgr:contract:"
ANY_ITEM = re.compile(r"\[\d+\]")
SCHEMAS = Path(__file__).with_name("schemas")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 as Ops Manager writes it: a date, ``T``, a time and a UTC offset (``Z`` or ``+hh:mm``)."""
    if not isinstance(value, str):
        return True  # the type keyword speaks for non-strings
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        raise ValueError(f"{value!r} is not an ISO-8601 date-time with a UTC offset")
    datetime.fromisoformat(value)  # rejects a month 13, a 25th hour...
    return True


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    if isinstance(value, str) and not (urlsplit(value).scheme and urlsplit(value).netloc):
        raise ValueError(f"{value!r} is not an absolute URI")
    return True


def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


@dataclass(frozen=True)
class Case:
    """The answer of ``method`` on ``route`` (under the public prefix) against ``schema`` (a file's name,
    optionally ``#/$defs/...``), wrapped in the list envelope when ``listed``. Path parameters are filled from
    the world's ids by name, ``ids`` renaming some (route parameter -> world id)."""

    method: str
    route: str
    schema: str
    listed: bool = False
    ids: dict[str, str] = field(default_factory=dict)
    mismatch: str = ""  # the known difference from the reference: a strict xfail until it is fixed

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.route}"

    def validator(self) -> Draft202012Validator:
        item = {"$ref": URN + self.schema}
        schema: dict[str, Any] = item
        if self.listed:
            schema = {"allOf": [{"$ref": URN + "paginated"}, {"properties": {"results": {"items": item}}}]}
        return Draft202012Validator(schema, registry=REGISTRY, format_checker=FORMATS)


def shape(route: str) -> str:
    """The route with its parameters' names erased: the server's names and ours need not agree."""
    return re.sub(r"\{[^}]*\}", "{}", route.partition("?")[0])


G = "/groups/{group_id}"
ROLL = {"group_id": "roll_group_id"}
EXIT = {"group_id": "exit_group_id"}
INDEX = {"group_id": "index_group_id"}
BACKING = {"group_id": "backing_group_id", "cluster_id": "backing_cluster_id"}
CLUSTER = f"{G}/clusters/{{cluster_id}}"
BACKUP_CONFIG = f"{G}/backupConfigs/{{cluster_id}}"
HOST_DISK = f"{G}/hosts/{{host_id}}/disks/{{partition_name}}"
HOST_DB = f"{G}/hosts/{{host_id}}/databases/{{database_name}}"

# Known differences from the reference (strict xfails: an XPASS means fixed, and the mismatch goes).
FCV = "automationConfig: processes[] have no featureCompatibilityVersion"
GLOBAL_ALERT = "global alert: no groupId (an installation-wide alert, the secondary's, belongs to no project)"
SNAPSHOT = "snapshot: parts[] have no mongodVersion (the daemon does not record it)"

CASES = [
    Case("get", "/orgs", "organization", listed=True),
    Case("post", "/orgs", "organization"),
    Case("get", "/orgs/{org_id}", "organization"),
    Case(
        "get",
        "/orgs/{org_id}/groups",
        "project",
        listed=True,
        ids={"org_id": "default_org_id"},
    ),
    Case("get", "/orgs/{org_id}/apiKeys", "api_key", listed=True),
    Case("post", "/orgs/{org_id}/apiKeys", "api_key"),
    Case("get", "/orgs/{org_id}/apiKeys/{key_id}", "api_key", ids={"key_id": "org_key_id"}),
    Case("get", "/groups", "project", listed=True),
    Case("post", "/groups", "project#/$defs/created"),
    Case("get", "/groups/byName/{group_name}", "project"),
    Case("get", G, "project"),
    Case("get", f"{G}/apiKeys", "api_key", listed=True),
    Case("post", f"{G}/apiKeys", "api_key"),
    Case("patch", f"{G}/apiKeys/{{group_key_id}}", "api_key"),
    Case("get", f"{G}/agentapikeys", "agent_api_key#/$defs/list"),
    Case("post", f"{G}/agentapikeys", "agent_api_key"),
    Case("get", f"{G}/automationConfig", "automation_config", mismatch=FCV),
    Case("put", f"{G}/automationConfig", "automation_config", mismatch=FCV),
    Case("get", f"{G}/automationStatus", "automation_status"),
    Case("get", f"{G}/hosts", "host", listed=True),
    Case("get", f"{G}/hosts/{{host_id}}", "host"),
    Case("get", f"{G}/hosts/byName/{{host_name_port}}", "host"),
    Case("get", f"{G}/hosts/{{host_id}}/measurements?granularity=PT1M&period=PT1H", "host_measurements"),
    Case("get", f"{G}/hosts/{{host_id}}/disks", "host_disk", listed=True),
    Case("get", f"{G}/hosts/{{host_id}}/disks/{{partition_name}}", "host_disk"),
    Case("get", f"{HOST_DISK}/measurements?granularity=PT1M&period=PT1H", "host_disk#/$defs/measurements"),
    Case("get", f"{G}/hosts/{{host_id}}/databases", "host_database", listed=True),
    Case("get", f"{G}/hosts/{{host_id}}/databases/{{database_name}}", "host_database"),
    Case("get", f"{HOST_DB}/measurements?granularity=PT1H&period=P1D", "host_database#/$defs/measurements"),
    Case("get", f"{G}/agents", "agent", listed=True),
    Case("get", f"{G}/agents/{{agent_type}}", "agent", listed=True),
    Case("get", f"{G}/restorationMode", "restoration_mode", ids=ROLL),
    Case("post", "/groups/{roll_group_id}/restorationMode/retry", "restoration_mode"),
    Case("delete", "/groups/{exit_group_id}/restorationMode", "restoration_mode"),
    Case("get", f"{G}/alerts", "alert", listed=True),
    Case("get", f"{G}/alerts/{{alert_id}}", "alert"),
    Case("patch", f"{G}/alerts/{{alert_id}}", "alert"),
    Case("get", "/globalAlerts", "global_alert", listed=True, mismatch=GLOBAL_ALERT),
    Case(
        "get",
        "/globalAlerts/{alert_id}",
        "global_alert",
        ids={"alert_id": "global_alert_id"},
        mismatch=GLOBAL_ALERT,
    ),
    Case("patch", "/globalAlerts/{global_alert_id}", "global_alert", mismatch=GLOBAL_ALERT),
    Case("get", "/clusters", "cluster#/$defs/allProjects", listed=True),
    Case("get", f"{G}/clusters", "cluster", listed=True),
    Case("get", CLUSTER, "cluster"),
    Case("get", f"{G}/backupConfigs", "backup_config", listed=True),
    Case("get", BACKUP_CONFIG, "backup_config"),
    Case("patch", BACKUP_CONFIG, "backup_config"),
    Case("get", f"{BACKUP_CONFIG}/snapshotSchedule", "snapshot_schedule"),
    Case("patch", f"{BACKUP_CONFIG}/snapshotSchedule", "snapshot_schedule"),
    Case("get", f"{CLUSTER}/snapshots", "snapshot", listed=True, mismatch=SNAPSHOT),
    Case("post", f"{CLUSTER}/snapshots", "on_demand_snapshot"),
    Case("post", f"{CLUSTER}/snapshots/onDemandSnapshot", "on_demand_snapshot"),
    Case("get", f"{CLUSTER}/snapshots/{{snapshot_id}}", "snapshot", mismatch=SNAPSHOT),
    Case("get", f"{CLUSTER}/restoreJobs", "restore_job", listed=True),
    Case("post", f"{CLUSTER}/restoreJobs", "restore_job", listed=True),
    Case("get", f"{CLUSTER}/restoreJobs/{{job_id}}", "restore_job"),
    Case("delete", f"{CLUSTER}/restoreJobs/{{cancelled_job_id}}", "restore_job"),
    Case("get", f"{CLUSTER}/backup/capacity", "backup_capacity"),
    Case("get", "/admin/backup/capacity", "backup_capacity#/$defs/blockstore"),
    Case("get", "/admin/backup/daemon", "backup_daemon"),
    Case("get", f"{G}/maintenanceWindows", "maintenance_window", listed=True),
    Case("post", f"{G}/maintenanceWindows", "maintenance_window"),
    Case("get", f"{G}/maintenanceWindows/{{window_id}}", "maintenance_window"),
    Case("patch", f"{G}/maintenanceWindows/{{window_id}}", "maintenance_window"),
    Case("get", f"{G}/alertConfigs", "alert_config", listed=True),
    Case("post", f"{G}/alertConfigs", "alert_config"),
    Case("get", f"{G}/alertConfigs/{{config_id}}", "alert_config"),
    Case("put", f"{G}/alertConfigs/{{config_id}}", "alert_config"),
    Case("patch", f"{G}/alertConfigs/{{config_id}}", "alert_config"),
    Case("get", f"{G}/alertConfigs/{{config_id}}/alerts", "alert", listed=True),
    Case("get", "/globalAlertConfigs", "global_alert_config", listed=True),
    Case("post", "/globalAlertConfigs", "global_alert_config"),
    Case("get", "/globalAlertConfigs/{global_config_id}", "global_alert_config"),
    Case("put", "/globalAlertConfigs/{global_config_id}", "global_alert_config"),
    Case("patch", "/globalAlertConfigs/{global_config_id}", "global_alert_config"),
    Case("get", "/globalAlertConfigs/{global_config_id}/alerts", "alert", listed=True),
    Case("get", f"{G}/maintenance", "maintenance_change", listed=True, ids=ROLL),
    Case("get", f"{G}/maintenance/{{change_id}}", "maintenance_change", ids=ROLL),
    Case("get", f"{G}/uniqueIndexBuilds", "index_build", listed=True, ids=INDEX),
    Case("post", "/groups/{index_group_id}/uniqueIndexBuilds", "index_build"),
    Case("get", f"{G}/uniqueIndexBuilds/{{build_id}}", "index_build", ids=INDEX),
    Case("post", "/groups/{index_group_id}/uniqueIndexBuilds/{build_id}/confirm", "index_build"),
    Case("post", "/groups/{backing_group_id}/backingDatabases", "backing_databases"),
    Case("get", f"{G}/backingDatabases", "backing_databases", listed=True, ids=BACKING),
    Case("get", f"{G}/backingDatabases/{{cluster_id}}", "backing_databases", ids=BACKING),
    Case(
        "get",
        f"{G}/backingDatabases/{{cluster_id}}/restoreJobs",
        "backing_databases#/$defs/restoreJob",
        listed=True,
        ids=BACKING,
    ),
    Case("post", "/groups/{backing_group_id}/backingDatabases/{backing_cluster_id}/drills", "drill"),
    Case("get", f"{G}/backingDatabases/{{cluster_id}}/drills", "drill", listed=True, ids=BACKING),
    Case("get", "/version", "version"),
]

# Public routes deliberately not checked, and why.
_BACKING_JOB = (
    "a backing databases' restore job needs the stores of a primary backed up by its agent (snapshots "
    "shipped by an agent on the primary's host): tests/e2e/test_secondary.py drives it"
)
NOT_COVERED = {
    ("delete", "/orgs/{}/apiKeys/{}"): "answers no resource (Ops Manager: an empty body)",
    ("delete", "/groups/{}"): "answers no resource (Ops Manager: an empty body)",
    ("delete", "/groups/{}/apiKeys/{}"): "answers no resource (Ops Manager: an empty body)",
    ("delete", "/groups/{}/agentapikeys/{}"): "answers no resource (Ops Manager: an empty body)",
    ("delete", "/groups/{}/maintenanceWindows/{}"): "answers no resource (Ops Manager: an empty body)",
    ("delete", "/groups/{}/alertConfigs/{}"): "answers no resource (Ops Manager: an empty body)",
    ("delete", "/globalAlertConfigs/{}"): "answers no resource (Ops Manager: an empty body)",
    ("delete", "/groups/{}/maintenance/replicaSets/{}/lease"): "opsmgr-only, answers an acknowledgement",
    ("delete", "/groups/{}/uniqueIndexBuilds/{}"): "cancelling would end the build the other cases read",
    ("post", "/orgs/{}/adoptedGroups"): (
        "opsmgr-only; the project it answers is GET /groups/{id}'s (checked) plus the adoption's hosts and "
        "Restoration Mode state: tests/restoration/test_adopt.py checks it"
    ),
    ("post", "/groups/{}/backingDatabases/{}/restoreJobs"): _BACKING_JOB,
    ("get", "/groups/{}/backingDatabases/{}/restoreJobs/{}"): _BACKING_JOB,
    ("patch", "/groups/{}/backingDatabases/{}/restoreJobs/{}"): _BACKING_JOB,
    ("delete", "/groups/{}/backingDatabases/{}/restoreJobs/{}"): (
        _BACKING_JOB + "; cancelling is driven by tests/e2e/test_backing_restore_cancel.py"
    ),
    ("get", "/groups/{}/backingDatabases/{}/restoreJobs/{}/stores/{}/documents"): (
        _BACKING_JOB + "; and it answers JSON lines, not one JSON document"
    ),
}


def public_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, shape(path[len(PREFIX) :]))
        for path, methods in spec["paths"].items()
        if path.startswith(PREFIX + "/")
        for method in methods
    }


@pytest.fixture(scope="module")
def spec(server: ServerProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/openapi.json", timeout=10).json())


@pytest.fixture(scope="module")
def world(
    server: ServerProcess, owner: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with built_world(server, owner, tmp_path_factory.mktemp("contract")) as w:
        yield w


def test_every_public_route_has_a_case(spec: dict[str, Any]) -> None:
    covered = {(c.method, shape(c.route)) for c in CASES}
    missing = sorted(public_routes(spec) - covered - set(NOT_COVERED))
    assert not missing, f"public routes with neither a contract case nor a reason to skip them: {missing}"
    assert not covered & set(NOT_COVERED), "a route is both checked and excused"


def test_every_schema_names_its_source() -> None:
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        source = schema["description"]
        assert "opsmgr-only" in source or (
            "Ops Manager" in source and "/docs/ops-manager/" in source and "reference/api/" in source
        ), path.name
        assert schema["$id"] == URN + path.stem, path.name


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2024-05-01T12:00:00Z", True),
        ("2024-05-01T12:00:00.123Z", True),
        ("2024-05-01T14:00:00+02:00", True),
        ("2024-05-01T12:00:00", False),  # no offset: not an instant
        ("2024-05-01", False),
        ("2024-13-01T12:00:00Z", False),
        ("1714564800000", False),
    ],
)
def test_the_date_time_format_is_really_checked(value: str, valid: bool) -> None:
    errors = list(Case("get", "/x", "common#/$defs/dateTime").validator().iter_errors(value))
    assert (not errors) is valid, errors
    assert list(Case("get", "/x", "common#/$defs/dateTime").validator().iter_errors(1714564800000))


def _params() -> Iterator[Any]:
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.mismatch)] if case.mismatch else []
        yield pytest.param(case, id=case.name, marks=marks)


def _answer(case: Case, world: World) -> httpx.Response:
    if case.method != "get":
        kept = world.answers.get((case.method, case.route))
        assert kept is not None, f"the world made nothing through {case.name}: add it to world.py"
        return kept
    names = {**world.ids, **{param: world.ids[name] for param, name in case.ids.items()}}
    return world.api.get(case.route.format(**names))


@pytest.mark.parametrize("case", list(_params()))
def test_answer_follows_the_reference(case: Case, spec: dict[str, Any], world: World) -> None:
    if (case.method, shape(case.route)) not in public_routes(spec):
        pytest.skip(f"{case.name} is not served by this server yet")
    answer = _answer(case, world)
    assert answer.status_code < 300, (answer.status_code, answer.text)
    body = answer.json()
    # One line per difference, whichever item of a list shows it.
    found = {f"{ANY_ITEM.sub('[*]', e.json_path)}: {e.message}" for e in case.validator().iter_errors(body)}
    assert not found, "\n".join(sorted(found))
