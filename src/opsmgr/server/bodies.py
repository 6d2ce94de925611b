"""The request bodies of the public routes that take one, as pydantic models, so that the OpenAPI document
shows each body's fields.

A model names and documents the fields and refuses a body that is not a JSON object; the values are checked
where they were before, by the domain (``backup.jobs``, ``backup.clusters``, ``backup.policy``,
``maintenance.index_service``, ``automation.config``), whose messages name what is wrong and where. So the
fields are typed loosely (``JsonValue``, with the type they must have declared for the document) and a
handler hands the domain the body :meth:`as it was sent <SentBody.as_sent>`. Unknown fields are refused
(``extra="forbid"``: a field this server does not act on is never silently dropped from what a caller asked
for), except in an automation config, whose sections this server keeps as they are.

May import ``opsmgr.jsontypes``, ``opsmgr.backup.clusters`` (the backup statuses) and ``opsmgr.backup.jobs``
(the restore job states and delivery limits).
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from opsmgr.backup.clusters import DEFAULT_BACKING_NAME, REQUESTABLE
from opsmgr.backup.jobs import FINAL, MAX_DOWNLOADS, MAX_EXPIRATION_HOURS
from opsmgr.jsontypes import JsonObject

# Loose types: any JSON value is let through to the domain, the document states what it must be.
Integer = Annotated[JsonValue, WithJsonSchema({"type": "integer", "format": "int64"})]
Number = Annotated[JsonValue, WithJsonSchema({"type": "number"})]
Text = Annotated[JsonValue, WithJsonSchema({"type": "string"})]
Flag = Annotated[JsonValue, WithJsonSchema({"type": "boolean"})]
Object = Annotated[JsonValue, WithJsonSchema({"type": "object"})]
Array = Annotated[JsonValue, WithJsonSchema({"type": "array"})]
Echo = Annotated[JsonValue, WithJsonSchema({"description": "Ignored: the path names it."})]


def _one_of(*values: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(values)})


def _required(*names: str) -> ConfigDict:
    """Unknown fields refused; ``names`` declared required in the document (the domain says what is
    missing, as it did before there was a model)."""
    return ConfigDict(extra="forbid", json_schema_extra={"required": list(names)})


class SentBody(BaseModel):
    """A body whose values the domain checks as they were sent."""

    model_config = ConfigDict(extra="forbid")
    _sent: JsonObject = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_as_sent(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        body = handler(data)
        if isinstance(data, dict):
            body._sent = data
        return body

    def as_sent(self) -> JsonObject:
        """The body as sent, key order included: a domain check reports the first field that is wrong."""
        return self._sent


# Backup (``server.backup_api``).


class BackupConfigBody(SentBody):
    """PATCH /groups/{groupId}/backupConfigs/{clusterId}: start, stop or terminate a cluster's backup."""

    model_config = _required("statusName")
    statusName: Annotated[JsonValue, _one_of(*(s.value for s in REQUESTABLE))] = Field(
        None,
        description="STARTED registers the replica set with the backup daemon; STOPPED keeps its snapshots; "
        "TERMINATING deletes its backups and ends INACTIVE.",
    )
    groupId: Echo = None
    clusterId: Echo = None
    links: Echo = None


class SnapshotScheduleBody(SentBody):
    """PATCH /groups/{groupId}/backupConfigs/{clusterId}/snapshotSchedule: the fields given change."""

    snapshotIntervalHours: Number = Field(None, description="Hours between snapshots (1 minute to 24 h).")
    snapshotRetentionDays: Integer = Field(None, description="Days a snapshot is kept (1 to 365).")
    dailySnapshotRetentionDays: Integer = Field(None, description="Days a daily snapshot is kept (0 to 365).")
    weeklySnapshotRetentionWeeks: Integer = Field(None, description="Weeks a weekly one is kept (0 to 52).")
    monthlySnapshotRetentionMonths: Integer = Field(
        None, description="Months a monthly one is kept (0 to 36)."
    )
    pointInTimeWindowHours: Number = Field(
        None, description="Hours of point-in-time restore window, at most snapshotRetentionDays * 24."
    )
    groupId: Echo = None
    clusterId: Echo = None
    links: Echo = None


class RestoreDelivery(SentBody):
    """How a restore is delivered: into a cluster's processes by their agents, or as an HTTP download."""

    model_config = _required("methodName")
    methodName: Annotated[JsonValue, _one_of("AUTOMATED_RESTORE", "HTTP")] = None
    targetGroupId: Text = Field(None, description="AUTOMATED_RESTORE: the target cluster's project.")
    targetClusterId: Text = Field(None, description="AUTOMATED_RESTORE: the cluster restored into.")
    expirationHours: Integer = Field(
        None,
        description=f"HTTP: hours the download URL stays valid (1 to {MAX_EXPIRATION_HOURS}; 1 if absent).",
    )
    maxDownloads: Integer = Field(
        None, description=f"HTTP: downloads the URL serves (1 to {MAX_DOWNLOADS}; 1 if absent)."
    )


_TARGET = "Give a snapshotId, a pointInTimeUTCMillis, or an oplogTs with its oplogInc."


class RestoreTarget(SentBody):
    """What to restore to: a snapshot, or a point in time (inclusive)."""

    snapshotId: Text = Field(None, description=_TARGET)
    pointInTimeUTCMillis: Integer = Field(None, description=_TARGET)
    oplogTs: Integer = Field(None, description="The oplog entry's time (seconds). " + _TARGET)
    oplogInc: Integer = Field(None, description="The oplog entry's increment. " + _TARGET)


class RestoreJobBody(RestoreTarget):
    """POST /groups/{groupId}/clusters/{clusterId}/restoreJobs."""

    model_config = _required("delivery")
    delivery: RestoreDelivery | None = None


# A secondary's backing databases (``server.secondary_api``).


class BackingDatabasesBody(SentBody):
    """POST /groups/{groupId}/backingDatabases: the deployment of a primary's backing databases."""

    clusterName: Text = Field(DEFAULT_BACKING_NAME, description="1 to 64 letters, digits, - or _.")
    hostname: Text = Field(None, description="The primary's host, whose agent ships them (absent: any).")


class BackingRestoreBody(SentBody):
    """POST /groups/{groupId}/backingDatabases/{clusterId}/restoreJobs."""

    model_config = _required("stores")
    stores: dict[str, RestoreTarget] | None = Field(
        None, description="Each store restored (app, snapshot, oplog) with its restore target."
    )
    purpose: Text = Field(
        None,
        description="RESTORE (default): the primary's stores; DRILL: a drill's sandbox, not production.",
    )
    delivery: Text = Field(
        None,
        description="CLI (default): the host that asks carries it out; AGENT: the backing agent on the "
        "primary's host does, reporting progress.",
    )
    force: Flag = Field(None, description="AGENT: accept metadata stores earlier than the app DB.")


class DrillBody(SentBody):
    """POST /groups/{groupId}/backingDatabases/{clusterId}/drills: what ``opsmgr drill run`` reports."""

    model_config = _required("passed", "started", "finished", "steps")
    passed: Flag = Field(None, description="Whether every step passed.")
    started: Integer = Field(None, description="Epoch ms the drill began.")
    finished: Integer = Field(None, description="Epoch ms it ended.")
    restorePointUTCMillis: Integer = Field(None, description="The point restored to, epoch ms.")
    restoreJobId: Text = Field(None, description="The DRILL restore job.")
    storeBytes: Object = Field(None, description="Each restored store's size in bytes.")
    steps: Array = Field(None, description="[{name, passed, seconds, detail}] in order.")


class BackingOutcomeBody(SentBody):
    """PATCH /groups/{groupId}/backingDatabases/{clusterId}/restoreJobs/{jobId}: the restoring host's
    outcome."""

    model_config = _required("statusName")
    statusName: Annotated[JsonValue, _one_of(*sorted(s.value for s in FINAL))] = None
    detail: Text = Field("", description="What happened, kept to 1000 characters.")


# Unique index builds (``server.index_builds_api``).


class UniqueIndexBuildBody(SentBody):
    """POST /groups/{groupId}/uniqueIndexBuilds."""

    model_config = _required("rsName", "dbName", "collectionName", "key")
    rsName: Text = None
    dbName: Text = None
    collectionName: Text = None
    key: Array = Field(None, description="[[field, 1 or -1], ...]")
    options: Object = Field(None, description="The index's options: unique (true), name.")
    lockPrimaryWrites: Flag = Field(
        None, description="Hold every write to the primary (fsyncLock) while secondaries build."
    )


class ConfirmBuildBody(SentBody):
    """POST /groups/{groupId}/uniqueIndexBuilds/{buildId}/confirm: writes to the collection are stopped."""

    model_config = _required("writesStopped")
    writesStopped: Flag = Field(None, description="true: every write to the collection is stopped.")
    operator: Text = Field(None, description="Who confirms (default: the API key).")


# Automation (``server.public_api``).


class AutomationConfigBody(SentBody):
    """PUT /groups/{groupId}/automationConfig: a whole Ops Manager automation config, as its GET shows it
    (every default filled) or with defaults left out. The top-level sections are named here;
    automation.config.validate checks them, reads a section sent as null as absent (a typed client's unset
    list) and keeps any other field as it is."""

    model_config = ConfigDict(extra="allow")
    version: Integer = Field(None, description="Ignored: the server assigns versions.")
    processes: Array = Field(None, description="The mongod and mongos processes.")
    replicaSets: Array = Field(None, description="Replica sets: _id, members (host: a process name).")
    sharding: Array = Field(None, description="Sharded clusters: their shards and config server set.")
    indexConfigs: Array = Field(None, description="Indexes to build (unique ones: uniqueIndexBuilds).")
    auth: Object = Field(None, description="Authentication: users, mechanisms, disabled.")
    tls: Object = None
    ssl: Object = None
    ldap: Object = None
    kerberos: Object = None
    options: Object = Field(None, description="downloadBase and the agents' options.")
    balancer: Object = None
    agentVersion: Object = None
    clusterWideConfigurations: Object = None
    mongoDbVersions: Array = None
    backupVersions: Array = None
    monitoringVersions: Array = None
    roles: Array = None
    cpsModules: Array = Field(None, description="Shown empty: opsmgr deploys no such module.")
    mongosqlds: Array = Field(None, description="Shown empty: opsmgr deploys no BI Connector.")
    mongots: Array = Field(None, description="Shown empty: opsmgr deploys no search process.")
    onlineArchiveModules: Array = Field(None, description="Shown empty: opsmgr deploys no such module.")
