"""Which server runs each periodic job when several servers share the backing databases: a lease per job in
the application database, and a fencing token that every write of the job checks.

A lease (``job_leases``: job name -> holder, token, expiry) is held by one server at a time. A server takes a
job's lease when nobody holds it or its holder let it expire, and the token then goes up by one; the holder
renews it (same token) while it lives. A holder that is killed, paused (SIGSTOP) or cut off stops renewing,
and another server takes the job over after the lease period. Expiry alone cannot stop a holder that was
paused mid-run from writing when it resumes: so a job runs under :func:`fenced` with its token, and every
write transaction of the thread that runs it (``Store.tx``) first compares that token with the highest the
same database has seen for the job (``job_fences``, one document per job in every database the job writes
to): a lower one is :class:`LeaseLost` and the transaction writes nothing; a higher one is recorded, so from
the new holder's first write on, the former holder's writes to that database fail. The check and the write
are one transaction, and write transactions run one at a time per database, so no write slips between them.

:func:`decide` is the pure rule. Writes made from threads a job starts itself are not fenced (the token
lives in the running thread's context). May import ``opsmgr.errors`` and ``opsmgr.store.engine`` (its
types only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsmgr.errors import Conflict

if TYPE_CHECKING:
    from opsmgr.store.engine import Store, Txn

LEASES = "job_leases"
FENCES = "job_fences"

_FENCE: ContextVar[tuple[str, int] | None] = ContextVar("job_fence", default=None)


class LeaseLost(Conflict):
    """A job's write refused: another server took the job's lease (a higher token wrote there first)."""

    error_code = "JOB_LEASE_LOST"


@dataclass(frozen=True)
class JobLease:
    job: str
    holder: str
    token: int
    expires_at: float

    def to_json(self) -> dict[str, object]:
        return {"_id": self.job, "holder": self.holder, "token": self.token, "expiresAt": self.expires_at}

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> JobLease:
        token, expires = raw.get("token"), raw.get("expiresAt")
        return cls(
            str(raw["_id"]),
            str(raw.get("holder", "")),
            token if isinstance(token, int) else 0,
            float(expires) if isinstance(expires, int | float) else 0.0,
        )


def decide(current: JobLease | None, job: str, me: str, now: float, ttl_s: float) -> JobLease | None:
    """The lease ``me`` holds after asking for ``job`` at ``now``; None while another server's is live.

    A new token is the time in milliseconds unless that is not above the last one: so it also stays above
    every fence a database restored to another point than the application database may hold (a restore of
    the metadata stores to a later point, their fences newer than the restored leases)."""
    if current is None or current.expires_at <= now:
        return JobLease(job, me, max((current.token if current else 0) + 1, int(now * 1000)), now + ttl_s)
    if current.holder == me:
        return JobLease(job, me, current.token, now + ttl_s)
    return None


class JobLeases:
    """This server's side of the leases in the application database ``app``; ``me`` names this server."""

    def __init__(self, app: Store, me: str, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.me = me
        self.ttl_s = ttl_s
        self.clock = clock
        self._held: dict[str, JobLease] = {}

    def acquire(self, job: str) -> JobLease | None:
        """This server's lease of ``job`` (taken or renewed), or None while another server holds it. A lease
        with more than half its period left is not renewed yet: one write per job per half period."""
        now = self.clock()
        held = self._held.get(job)
        if held is not None and held.expires_at - now > self.ttl_s / 2:
            return held
        with self.app.tx() as t:
            raw = t.get(LEASES, job)
            lease = decide(JobLease.from_json(raw) if raw else None, job, self.me, now, self.ttl_s)
            if lease is not None:
                t.put(LEASES, lease.to_json())
        if lease is None:
            self._held.pop(job, None)
        else:
            self._held[job] = lease
        return lease

    def renew_held(self) -> None:
        """Renews every lease this server holds (while a long run of its job goes on)."""
        for job in list(self._held):
            self.acquire(job)

    def release_all(self) -> None:
        """Lets every lease this server holds expire now, so that another server takes its jobs at once."""
        with self.app.tx() as t:
            for job in self._held:
                raw = t.get(LEASES, job)
                if raw is not None and JobLease.from_json(raw).holder == self.me:
                    t.update(LEASES, job, {"expiresAt": 0.0})
        self._held.clear()

    def holders(self) -> dict[str, JobLease]:
        with self.app.read() as t:
            return {raw["_id"]: JobLease.from_json(raw) for raw in t.find(LEASES)}


@contextmanager
def fenced(job: str, token: int) -> Iterator[None]:
    """Every write transaction of this thread, until the block ends, is checked against ``job``'s token."""
    reset = _FENCE.set((job, token))
    try:
        yield
    finally:
        _FENCE.reset(reset)


def current_fence() -> tuple[str, int] | None:
    """The job and fencing token this thread's writes are checked against, if it runs a job."""
    return _FENCE.get()


def check_fence(txn: Txn) -> None:
    """Called by ``Store.tx`` at the start of every write transaction (see the module's docstring)."""
    fence = _FENCE.get()
    if fence is None:
        return
    job, token = fence
    seen = txn.get(FENCES, job)
    highest = seen.get("token") if seen else None
    if isinstance(highest, int) and highest > token:
        raise LeaseLost(f"periodic job {job}: another server holds its lease now (token {highest} > {token})")
    if highest != token:
        txn.put(FENCES, {"_id": job, "token": token})
