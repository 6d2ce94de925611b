"""What an agent reports each cycle (``POST /agents/api/automation/status/v1/{groupId}``), as a bounded,
typed record: only the fields the server reads are kept, each within the bounds of what it holds, so a
report can neither grow the application database nor carry a value a later reader chokes on.

A process's ``measurements`` sample is a flat map of at most ``MAX_MEASUREMENTS`` upper-case names to
finite numbers; which names the server keeps is the measurement store's business. Its storage comes as
``disks`` (at most ``MAX_PARTITIONS`` partitions, by a name fit for a URL's segment) and ``databases`` (at
most ``MAX_DATABASES``, by a MongoDB database name), each a map of the same kind.

Long texts (status sentences, error texts) are cut rather than refused: an agent reporting a long error must
still be heard. Numbers out of range, wrong types and too many processes are refused (400). May import
pydantic only.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_TEXT = 2000
MAX_PROCESSES = 200
MAX_PLAN_MOVES = 100
MAX_VERSION = 2**62
MAX_EPOCH_MS = 32_503_680_000_000  # the year 3000
MAX_OPTIME = 2**63 - 1
MAX_MEASUREMENTS = 64
MAX_MEASURE = 1e18
MAX_PARTITIONS = 16
MAX_DATABASES = 100  # drivers.base.MAX_DATABASES: what an agent samples


def _cut(limit: int) -> AfterValidator:
    return AfterValidator(lambda text: text if len(text) <= limit else text[: limit - 1] + "…")


Text = Annotated[str, _cut(MAX_TEXT)]
Word = Annotated[str, _cut(64)]
Name = Annotated[str, Field(min_length=1, max_length=255)]
ConfigVersion = Annotated[int, Field(ge=-1, le=MAX_VERSION)]
EpochMs = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS)]
MeasurementName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
# An int is a number too: strict mode takes it as a float (a bool or a string it refuses).
Measure = Annotated[float, Field(ge=-MAX_MEASURE, le=MAX_MEASURE, allow_inf_nan=False)]
Sample = Annotated[dict[MeasurementName, Measure], Field(max_length=MAX_MEASUREMENTS)]
PartitionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
# MongoDB's database names: no '/\. "$', shorter than 64 bytes.
DatabaseName = Annotated[str, Field(pattern=r'^[^/\\. "$\x00]{1,63}$')]


class _Record(BaseModel):
    # strict: a JSON string is not a number and 1.5 is not a version; unknown fields are dropped.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Observed(_Record):
    """The process as the agent's driver sees it."""

    hostname: Name | None = None
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    running: bool = False
    mode: Word | None = None
    version: Word | None = None
    replicaSetName: Annotated[str, Field(max_length=255)] | None = None
    replicaStateName: Word | None = None
    optimeTs: Annotated[int, Field(ge=0, le=MAX_OPTIME)] | None = None
    connections: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    lagSeconds: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] | None = None
    measurements: Sample | None = None
    disks: Annotated[dict[PartitionName, Sample], Field(max_length=MAX_PARTITIONS)] | None = None
    databases: Annotated[dict[DatabaseName, Sample], Field(max_length=MAX_DATABASES)] | None = None


class ProcessReport(_Record):
    name: Name
    lastGoalVersionAchieved: ConfigVersion = -1
    plan: Annotated[list[Word], Field(max_length=MAX_PLAN_MOVES)] = []
    currentStep: Word | None = None
    stepIndex: Annotated[int, Field(ge=0, le=10_000)] | None = None
    blockedReason: Text | None = None
    errorText: Text | None = None
    observed: Observed | None = None


class StatusReport(_Record):
    cv: ConfigVersion | None = None
    cvTimestamp: EpochMs | None = None
    cvHash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    lastGoalVersionAchieved: ConfigVersion = -1
    statusSentence: Text | None = None
    timestamp: EpochMs | None = None
    driver: Word | None = None
    processes: Annotated[list[ProcessReport], Field(max_length=MAX_PROCESSES)] = []
    # The version of the work list the agent holds: the answer carries the work only when it changed.
    workVersion: Annotated[str, Field(pattern=r"^[0-9a-f]{1,64}$")] | None = None

    def running_processes(self) -> set[str]:
        return {p.name for p in self.processes if p.observed is not None and p.observed.running}

    def stored(self) -> dict[str, Any]:
        """The document kept in ``agent_status`` (without its key fields); a process's storage sample (up
        to 100 databases' dbStats) is kept by the measurement store only."""
        storage = {"processes": {"__all__": {"observed": {"disks", "databases"}}}}
        return self.model_dump(exclude={"workVersion": True, **storage})
