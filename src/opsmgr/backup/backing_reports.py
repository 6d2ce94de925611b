"""What a backing restore job is asked to be and what its agent reports, checked as sent. Pure.

A job of the primary's backing databases is created with a ``purpose`` (RESTORE, DRILL) and a ``delivery``
(CLI: the host that asked carries it out; AGENT: the backing agent on the primary's host does, and
``force`` then travels with the job, as the agent decides the seed's rules). The agent reports its
``progress`` (``{phase, fraction, documents, message}``, and while writing ``written``: the stores it
wrote, ``writing``: the one it writes, which a cancellation's statement is made of) and at the end an
``outcome`` (the stores written, the warnings, the jobs that would answer 409): both are kept on the job
as sent, within bounds, so a forged report can neither grow the job nor put anything but JSON data in it.

May import ``opsmgr.errors``, ``opsmgr.backup.job_records`` and ``opsmgr.store.backing``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from opsmgr.backup.job_records import BackingDelivery, RestorePurpose
from opsmgr.errors import InvalidInput
from opsmgr.store.backing import LABELS

PHASES = ("WAITING", "DOWNLOADING", "DECIDING", "FENCING", "WRITING", "REPORTING", "DONE")
MAX_MESSAGE = 300
MAX_OUTCOME_BYTES = 16_000
REPORT_FIELDS = frozenset({"progress", "statusName", "detail", "outcome"})
PROGRESS_FIELDS = frozenset({"phase", "fraction", "documents", "message", "written", "writing"})


def backing_choices(purpose: Any, delivery: Any, force: Any) -> tuple[RestorePurpose, BackingDelivery]:
    """A new job's purpose and delivery; 400 naming the field for anything else. A drill restores into its
    sandbox on the drill's host: no agent carries it out."""
    if purpose is None:
        purpose = RestorePurpose.RESTORE.value
    if purpose not in [p.value for p in RestorePurpose]:
        raise InvalidInput("purpose must be RESTORE or DRILL", field="purpose")
    if delivery is None:
        delivery = BackingDelivery.CLI.value
    if delivery not in [d.value for d in BackingDelivery]:
        raise InvalidInput("delivery must be CLI or AGENT", field="delivery")
    if force is not None and not isinstance(force, bool):
        raise InvalidInput("force must be true or false", field="force")
    if delivery == BackingDelivery.AGENT and purpose == RestorePurpose.DRILL:
        raise InvalidInput(
            "a drill restores into a sandbox on the drill's host; delivery AGENT is for the primary's stores",
            field="delivery",
        )
    if force is not None and delivery != BackingDelivery.AGENT:
        raise InvalidInput("force goes with delivery AGENT (the CLI decides it itself)", field="force")
    return RestorePurpose(purpose), BackingDelivery(delivery)


def parse_progress(raw: Any) -> dict[str, Any]:
    """``{phase, fraction, documents, message, written, writing}`` as an agent sends it: a known phase, a
    fraction from 0 to 1, a document count, a short message, store names."""
    if not isinstance(raw, dict) or set(raw) - PROGRESS_FIELDS:
        raise InvalidInput(
            "progress must be an object of phase, fraction, documents, message, written and writing",
            field="progress",
        )
    phase, fraction = raw.get("phase"), raw.get("fraction", 0)
    documents, message = raw.get("documents", 0), raw.get("message", "")
    if phase not in PHASES:
        raise InvalidInput(f"progress.phase must be one of {', '.join(PHASES)}", field="progress.phase")
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not math.isfinite(fraction)
        or not 0 <= fraction <= 1
    ):
        raise InvalidInput("progress.fraction must be a number from 0 to 1", field="progress.fraction")
    if isinstance(documents, bool) or not isinstance(documents, int) or not 0 <= documents < 2**53:
        raise InvalidInput("progress.documents must be a count", field="progress.documents")
    if not isinstance(message, str):
        raise InvalidInput("progress.message must be text", field="progress.message")
    return {
        "phase": phase,
        "fraction": float(fraction),
        "percent": round(float(fraction) * 100, 1),
        "documents": documents,
        "message": message[:MAX_MESSAGE],
        **_stores_of(raw),
    }


def _stores_of(raw: dict[str, Any]) -> dict[str, Any]:
    """``written`` (a list of store names, each once) and ``writing`` (a store name or null), when sent."""
    out: dict[str, Any] = {}
    if "written" in raw:
        written = raw["written"]
        if (
            not isinstance(written, list)
            or not all(_store(w) for w in written)
            or len(set(written)) != len(written)
        ):
            raise InvalidInput(
                f"progress.written must list stores of {sorted(LABELS)}", field="progress.written"
            )
        out["written"] = written
    if "writing" in raw:
        if raw["writing"] is not None and not _store(raw["writing"]):
            raise InvalidInput(f"progress.writing must be one of {sorted(LABELS)}", field="progress.writing")
        out["writing"] = raw["writing"]
    return out


def parse_agent_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The job's fields an agent's report sets (``progress``, ``outcome``); 400 for an unknown field, a
    malformed progress, an outcome that is not an object or over 16 kB, a detail that is not text."""
    unknown = sorted(set(report) - REPORT_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field(s) {unknown} in a restore report", field=unknown[0])
    fields: dict[str, Any] = {}
    if "progress" in report:
        fields["progress"] = parse_progress(report["progress"])
    if not isinstance(report.get("detail", ""), str):
        raise InvalidInput("detail must be text", field="detail")
    if "outcome" in report:
        outcome = report["outcome"]
        if not isinstance(outcome, dict):
            raise InvalidInput("outcome must be an object", field="outcome")
        try:
            size = len(json.dumps(outcome, allow_nan=False))
        except ValueError:
            raise InvalidInput("outcome must be JSON data", field="outcome") from None
        if size > MAX_OUTCOME_BYTES:
            raise InvalidInput(f"outcome is over {MAX_OUTCOME_BYTES} bytes", field="outcome")
        fields["outcome"] = outcome
    if "statusName" not in report and "progress" not in fields:
        raise InvalidInput("a restore report carries progress or a statusName", field="progress")
    return fields


def _store(name: Any) -> bool:
    return isinstance(name, str) and name in LABELS
