"""GET then PUT of the automation config through a real server: the GET shows every default Ops Manager shows,
and putting it back, whether as JSON, through a typed client modelled on the Go client's structs or through
the published ``opsmanager`` Python client, is accepted and changes nothing (same version, same ETag, same
GET, the same config for the agents).

The typed model follows ``opsmngr/automation_config.go`` of ``mongodb/go-client-mongodb-ops-manager`` field by
field: decoding keeps only the fields a struct names (a field the GET lacks becomes its zero value), encoding
writes every field without ``omitempty`` (its zero value when unset: ``false``, ``0``, ``""``, ``null``) and
drops the ``omitempty`` ones that are zero, as Go's ``encoding/json`` does.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.agent_protocol import FakeAgent
from tests.configs import replica_set_config
from tests.procs import ServerProcess

HOSTS = [f"rt{i}.roundtrip.net" for i in range(4)]


# --- a typed client, as the Go client's structs decode and encode ----------------------------------------


@dataclass(frozen=True)
class F:
    """One struct field: its JSON name, its Go kind, whether its tag has ``omitempty``, and the struct of a
    struct, pointer-to-struct or slice-of-struct field."""

    name: str
    kind: str  # string, int, float, bool, struct, ptr (a pointer: map, struct, scalar), slice, any
    omitempty: bool = False
    of: tuple[F, ...] | None = None


def s(*names: str) -> tuple[F, ...]:
    """String fields with omitempty."""
    return tuple(F(n, "string", True) for n in names)


def p(*names: str) -> tuple[F, ...]:
    """Pointer fields (maps, scalars) with omitempty."""
    return tuple(F(n, "ptr", True) for n in names)


TLS = (
    *s("CAFile", "certificateKeyFile", "certificateKeyFilePassword", "certificateSelector"),
    *s("clusterCertificateSelector", "clusterFile", "clusterPassword", "CRLFile", "disabledProtocols"),
    *p("FIPSMode"),
    *s("mode", "PEMKeyFile"),
)
NET = (
    *p("bindIp", "bindIpAll", "compression", "http", "ipv6"),
    *s("listenBacklog"),
    *p("maxIncomingConnections"),
    F("port", "int", True),
    *s("serviceExecutor"),
    F("ssl", "ptr", True, TLS),
    F("tls", "ptr", True, TLS),
    *s("transportLayer"),
    *p("unixDomainSocket"),
)
STORAGE = (
    *s("dbPath"),
    *p("directoryPerDB"),
    *s("engine"),
    *p("indexBuildRetry", "inMemory", "journal", "nsSize", "oplogMinRetentionHours", "preallocDataFiles"),
    *p("quota"),
    *s("repairPath"),
    *p("smallFiles", "syncPeriodSecs", "wiredTiger"),
)
REPLICATION = (*p("enableMajorityReadConcern", "oplogSizeMB"), *s("replSetName"))
PROCESS_SHARDING = (*p("archiveMovedChunks", "autoSplit", "chunkSize"), *s("clusterRole"))
SYSTEM_LOG = (
    *s("destination", "path"),
    F("logAppend", "bool", True),
    F("verbosity", "int", True),
    F("quiet", "bool", True),
    *s("syslogFacility", "logRotate", "timeStampFormat"),
)
AUDIT_LOG = s("destination", "path", "format", "filter")
ARGS26 = (
    F("auditLog", "ptr", True, AUDIT_LOG),
    *p("basisTech"),
    F("net", "struct", False, NET),
    *p("operationProfiling", "processManagement"),
    F("replication", "ptr", True, REPLICATION),
    *p("setParameter", "security"),
    F("sharding", "ptr", True, PROCESS_SHARDING),
    F("storage", "ptr", True, STORAGE),
    *p("snmp"),
    F("systemLog", "struct", False, SYSTEM_LOG),
)
PROCESS = (
    *s("alias"),
    F("args2_6", "struct", False, ARGS26),
    *p("auditLogRotate"),
    F("authSchemaVersion", "int", True),
    *s("backupPitRestoreType"),
    *s("backupRestoreCertificateValidationHostname"),
    F("backupRestoreCheckpointTimestamp", "any", True),
    F("backupRestoreDesiredTime", "any", True),
    F("backupRestoreFilterList", "any", True),
    *s("backupRestoreJobId", "backupRestoreUrl"),
    *p("backupRestoreIsSuccessiveUpgrade"),
    *s("backupRestoreOplogBaseUrl"),
    F("backupRestoreOplog", "any", True),
    *p("backupRestoreRsVersion"),
    *s("backupRestoreSourceGroupId", "backupRestoreSourceRsId", "backupRestoreSystemRolesUUID"),
    *s("backupRestoreSystemUsersUUID", "backupRestoreVerificationKey"),
    F("cpuAffinity", "slice", True),
    *s("cluster"),
    *p("credentialsVersion", "defaultRWConcern"),
    F("disabled", "bool"),
    *s("featureCompatibilityVersion"),
    F("fullVersion", "any", True),
    *p("horizons"),
    *s("hostname"),
    *p("kmipProxyPort"),
    *s("lastCompact", "lastResync", "lastRestart"),
    F("lastGoalVersionAchieved", "int", True),
    *s("lastKmipMasterKeyRotation"),
    *p("logLevel", "logRotate"),
    F("manualMode", "bool"),
    *s("name"),
    F("numCores", "int", True),
    F("plan", "slice", True),
    *s("processType", "version"),
)
MEMBER = (
    F("_id", "int"),
    F("arbiterOnly", "bool"),
    F("buildIndexes", "bool"),
    F("hidden", "bool"),
    *p("horizons"),
    F("host", "string"),
    F("priority", "float"),
    *p("slaveDelay", "secondaryDelaySecs"),
    *p("tags"),
    F("votes", "float"),
)
REPLICA_SET = (
    F("_id", "string"),
    *s("protocolVersion"),
    F("members", "slice", False, MEMBER),
    *p("settings"),
    *s("writeConcernMajorityJournalDefault"),
    *p("force"),
)
SHARD = (F("_id", "string"), F("rs", "string"), F("tags", "slice"))
SHARDING = (
    F("collections", "slice"),
    F("configServerReplica", "string"),
    F("draining", "slice"),
    F("managedSharding", "bool"),
    F("name", "string"),
    F("shards", "slice", False, SHARD),
    F("tags", "slice"),
)
INDEX_CONFIG = (
    F("dbName", "string"),
    F("collectionName", "string"),
    F("rsName", "string"),
    F("key", "any"),
    *p("options", "collation"),
)
SSL = s("autoPEMKeyFilePath", "autoPEMKeyFilePwd", "CAFilePath", "clientCertificateMode")
ROLE = (F("role", "string"), F("db", "string"))
RESTRICTION = (F("clientSource", "slice"), F("serverAddress", "slice"))
USER = (
    F("authenticationRestrictions", "slice", False, RESTRICTION),
    F("customData", "any", True),
    F("db", "string"),
    *s("initPwd"),
    *p("mechanisms"),
    *s("pwd"),
    F("roles", "slice", False, ROLE),
    *p("scramSha256Creds", "scramSha1Creds"),
    F("user", "string"),
)
DELETED_USER = (F("user", "string"), F("dbs", "slice"))
AUTH = (
    F("authoritativeSet", "bool"),
    F("autoAuthMechanism", "string"),
    F("autoAuthMechanisms", "slice", True),
    F("autoAuthRestrictions", "slice"),
    *s("autoKerberosKeytabPath", "autoLdapGroupDN", "autoPwd"),
    *s("autoUser"),
    F("deploymentAuthMechanisms", "slice", True),
    F("disabled", "bool"),
    *s("key", "keyfile", "keyfileWindows", "newAutoPwd"),
    F("usersDeleted", "slice", False, DELETED_USER),
    F("usersWanted", "slice", False, USER),
)
CONFIG_VERSION = (F("name", "string"), F("hostname", "string"))
AUTOMATION_CONFIG = (
    *p("agentVersion", "atlasProxies"),
    F("atlasUISes", "slice", True),
    *p("filebeat"),
    F("auth", "struct", False, AUTH),
    F("backupVersions", "slice", False, CONFIG_VERSION),
    F("balancer", "ptr"),
    *p("clusterWideConfigurations"),
    F("cpsModules", "slice"),
    F("dbCheckModules", "slice", True),
    F("indexConfigs", "slice", False, INDEX_CONFIG),
    *p("kerberos", "ldap"),
    F("maintainedEnvoys", "slice", True),
    *p("mongoDbToolsVersion"),
    F("mongoDbVersions", "slice", True),
    F("mongosqlds", "slice"),
    F("monitoringVersions", "slice", True, CONFIG_VERSION),
    F("onlineArchiveModules", "slice"),
    F("mongots", "slice"),
    F("options", "ptr"),
    F("processes", "slice", False, PROCESS),
    *p("prometheus"),
    F("replicaSets", "slice", False, REPLICA_SET),
    F("roles", "slice"),
    F("sharding", "slice", False, SHARDING),
    F("ssl", "ptr", True, SSL),
    F("tls", "ptr", True, SSL),
    *p("uiBaseUrl"),
    F("version", "int", True),
)

ZERO = {"string": "", "int": 0, "float": 0.0, "bool": False}
UNSET = object()  # a nil pointer, slice or interface


def decode(doc: Mapping[str, Any], fields: tuple[F, ...]) -> dict[str, Any]:
    """A struct decoded from JSON: every field it names (absent ones at their zero value), nothing else."""
    return {f.name: _decode_value(doc.get(f.name, UNSET), f) for f in fields}


def _decode_value(value: Any, f: F) -> Any:
    if value is None:
        value = UNSET  # JSON null leaves a Go field at its zero value
    if f.kind in ZERO:
        return ZERO[f.kind] if value is UNSET else (float(value) if f.kind == "float" else value)
    if f.kind == "struct":
        return decode({} if value is UNSET else value, f.of or ())
    if value is UNSET or f.of is None:
        return value
    if f.kind == "slice":
        return [decode(item, f.of) for item in value]
    return decode(value, f.of)


def encode(struct: Mapping[str, Any], fields: tuple[F, ...]) -> dict[str, Any]:
    """A struct encoded as Go encodes it: omitempty fields dropped when empty, the others always written."""
    out: dict[str, Any] = {}
    for f in fields:
        value = struct[f.name]
        if f.omitempty and _empty(value, f):
            continue
        out[f.name] = _encode_value(value, f)
    return out


def _empty(value: Any, f: F) -> bool:
    """What omitempty drops: a zero scalar, an empty slice, a nil pointer (not a pointer to a zero)."""
    if value is UNSET:
        return True
    if f.kind in ZERO:
        return bool(value == ZERO[f.kind])
    return f.kind == "slice" and value == []


def _encode_value(value: Any, f: F) -> Any:
    if value is UNSET:
        return None
    if f.kind == "float":
        return int(value) if value == int(value) else value  # Go writes 1.0 as 1
    if f.of is None or f.kind in ZERO:
        return value
    if f.kind == "slice":
        return [encode(item, f.of) for item in value]
    return encode(value, f.of)


def typed_round_trip(config: Mapping[str, Any]) -> dict[str, Any]:
    return encode(decode(config, AUTOMATION_CONFIG), AUTOMATION_CONFIG)


def test_the_typed_model_follows_go_semantics() -> None:
    """The model itself: a GET lacking defaults comes back with the zero values that broke such clients."""
    sent = typed_round_trip(replica_set_config(HOSTS[:1]))
    member = sent["replicaSets"][0]["members"][0]
    assert member["buildIndexes"] is False and "tags" not in member and "secondaryDelaySecs" not in member
    assert sent["auth"] == {
        "authoritativeSet": False,
        "autoAuthMechanism": "",
        "autoAuthRestrictions": None,
        "disabled": False,
        "usersDeleted": None,
        "usersWanted": None,
    }
    assert sent["sharding"] is None and "mongoDbVersions" not in sent and "version" not in sent


# --- against a real server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(server: ServerProcess, owner: dict[str, Any]) -> Iterator[httpx.Client]:
    with server.client(owner) as c:
        yield c


def deployment() -> dict[str, Any]:
    """Four members: two electable, a hidden delayed one and a non-voting one (zero values that are
    settings), a user, and a sharded cluster (the four as its shard, a one-member config server set) whose
    mongos has no log settings."""
    config = replica_set_config(HOSTS)
    csrs = replica_set_config(HOSTS[:1], rs="csrs", port=27019)
    for proc, role in [(p, "shardsvr") for p in config["processes"]] + [(csrs["processes"][0], "configsvr")]:
        proc["args2_6"]["sharding"] = {"clusterRole": role}
    config["processes"] += csrs["processes"]
    config["replicaSets"] += csrs["replicaSets"]
    mongos = {"name": "mongos", "processType": "mongos", "hostname": HOSTS[0], "version": "7.0.5"}
    config["processes"].append(mongos | {"cluster": "c1", "args2_6": {"net": {"port": 27018}}})
    config["sharding"] = [
        {"name": "c1", "configServerReplica": "csrs", "shards": [{"_id": "s0", "rs": "rs0"}]}
    ]
    members = config["replicaSets"][0]["members"]
    members[2].update(priority=0, hidden=True, secondaryDelaySecs=3600)
    members[3].update(priority=0, votes=0)
    for member in members:
        del member["arbiterOnly"]  # left to the default, as many configs do
    config["auth"] = {
        "disabled": True,
        "usersWanted": [{"user": "app", "db": "admin", "roles": [{"role": "readWrite", "db": "shop"}]}],
    }
    return config


@pytest.fixture
def project(api: httpx.Client) -> str:
    r = api.post("/groups", json={"name": f"rt-{uuid.uuid4().hex[:12]}"})
    assert r.status_code == 201, r.text
    gid = str(r.json()["id"])
    put = api.put(f"/groups/{gid}/automationConfig", json=deployment())
    assert put.status_code == 200, put.text
    return gid


def read(api: httpx.Client, gid: str) -> tuple[dict[str, Any], str]:
    r = api.get(f"/groups/{gid}/automationConfig")
    assert r.status_code == 200, r.text
    return r.json(), r.headers["etag"]


def put_back(api: httpx.Client, gid: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.put(f"/groups/{gid}/automationConfig", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_get_shows_ops_managers_defaults(api: httpx.Client, project: str) -> None:
    config, _ = read(api, project)
    rs = config["replicaSets"][0]
    assert rs["protocolVersion"] == "1" and rs["settings"] == {}
    for member in rs["members"]:
        assert {"arbiterOnly", "buildIndexes", "hidden", "priority", "votes", "tags"} <= set(member)
        assert member["buildIndexes"] is True and "secondaryDelaySecs" in member
    assert [(m["priority"], m["votes"]) for m in rs["members"]] == [(1, 1), (1, 1), (0, 1), (0, 0)]
    assert rs["members"][2]["secondaryDelaySecs"] == 3600
    auth = config["auth"]
    assert auth["autoAuthMechanism"] == "MONGODB-CR" and auth["autoAuthRestrictions"] == []
    assert auth["usersWanted"][0]["authenticationRestrictions"] == []
    for proc in config["processes"]:
        assert proc["manualMode"] is False and proc["authSchemaVersion"] == 5
    for key in ("cpsModules", "mongosqlds", "mongots", "onlineArchiveModules", "mongoDbVersions"):
        assert config[key] == []


def assert_unchanged(
    api: httpx.Client, gid: str, before: dict[str, Any], tag: str, answer: dict[str, Any]
) -> None:
    after, after_tag = read(api, gid)
    assert answer == before, "the PUT answers the config as the GET shows it"
    assert after == before and after_tag == tag


def test_typed_get_put_round_trip_changes_nothing(api: httpx.Client, project: str) -> None:
    before, tag = read(api, project)
    sent = typed_round_trip(before)
    assert sent != before, "the typed client drops fields (empty omitempty lists, unknown ones)"
    assert_unchanged(api, project, before, tag, put_back(api, project, sent))


def test_typed_round_trip_with_a_change_moves_the_version_once(api: httpx.Client, project: str) -> None:
    before, _ = read(api, project)
    struct = decode(before, AUTOMATION_CONFIG)
    struct["replicaSets"][0]["members"][1]["priority"] = 2.0
    answer = put_back(api, project, encode(struct, AUTOMATION_CONFIG))
    assert answer["version"] == before["version"] + 1
    assert answer["replicaSets"][0]["members"][1]["priority"] == 2
    again, again_tag = read(api, project)
    assert again == answer
    assert_unchanged(api, project, again, again_tag, put_back(api, project, typed_round_trip(again)))


def test_untyped_round_trip_changes_nothing(api: httpx.Client, project: str) -> None:
    before, tag = read(api, project)
    assert_unchanged(api, project, before, tag, put_back(api, project, copy.deepcopy(before)))


def test_agents_keep_their_config_through_a_round_trip(
    api: httpx.Client, server: ServerProcess, project: str
) -> None:
    key = api.post(f"/groups/{project}/agentapikeys", json={"desc": "rt"}).json()["key"]
    agent, fresh = (FakeAgent(server.url, project, key, HOSTS[0]) for _ in range(2))
    try:
        assert agent.poll() == 200
        before, _ = read(api, project)
        put_back(api, project, typed_round_trip(before))
        assert agent.poll() == 304, "an agent at the current version has nothing new to adopt"
        assert fresh.poll() == 200 and fresh.held == agent.held, "agents are served the config as it was"
    finally:
        agent.http.close()
        fresh.http.close()


def test_published_python_client_round_trip_changes_nothing(
    server: ServerProcess, owner: dict[str, Any], api: httpx.Client, project: str
) -> None:
    before, tag = read(api, project)
    with server.ops_manager_client(owner) as om:
        config = om.automation.get_config(project)
        assert config == before
        answer = om.automation._put(f"groups/{project}/automationConfig", json=config)
    assert_unchanged(api, project, before, tag, answer)


def test_a_typed_client_building_a_config_is_read_as_ops_manager_reads_it(
    api: httpx.Client, project: str
) -> None:
    """From scratch, a typed client sends null lists and an empty agent mechanism: read as absent. Its
    ``buildIndexes: false`` is a setting, refused with priority 1 as MongoDB refuses it."""
    before, _ = read(api, project)
    built = deployment()
    for member in (m for rs in built["replicaSets"] for m in rs["members"]):
        member["buildIndexes"] = True
    built["replicaSets"][0]["members"][1]["priority"] = 3
    sent = typed_round_trip(built)
    assert sent["roles"] is None and sent["auth"]["autoAuthMechanism"] == ""
    assert sent["sharding"][0]["collections"] is None and sent["sharding"][0]["draining"] is None
    answer = put_back(api, project, sent)
    assert answer["version"] == before["version"] + 1 and answer["roles"] == []
    assert answer["sharding"][0]["collections"] == [] and answer["sharding"][0]["draining"] == []
    del built["replicaSets"][0]["members"][0]["buildIndexes"]
    refused = api.put(f"/groups/{project}/automationConfig", json=typed_round_trip(built))
    assert refused.status_code == 400, refused.text
    assert refused.json()["parameters"] == {
        "field": "replicaSets[0].members[0].priority",
        "rule": "build-indexes-priority",
    }
    assert read(api, project)[0] == answer, "the refused PUT changed nothing"


def test_a_read_only_key_cannot_put_the_config_back(
    api: httpx.Client, server: ServerProcess, project: str
) -> None:
    reader = api.post(f"/groups/{project}/apiKeys", json={"desc": "r", "roles": ["GROUP_READ_ONLY"]}).json()
    before, _ = read(api, project)
    with server.client(reader) as ro:
        assert ro.get(f"/groups/{project}/automationConfig").json() == before
        refused = ro.put(f"/groups/{project}/automationConfig", json=before)
    assert refused.status_code == 403 and refused.json()["error"] == 403
