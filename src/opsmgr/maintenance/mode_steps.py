"""The one-step rule of the TLS, cluster authentication and authentication modes between two configs.

Owns the modes' ladders (``disabled -> allowTLS -> preferTLS -> requireTLS``, ``keyFile -> sendKeyFile ->
sendX509 -> x509``, ``disabled -> transitionToAuth -> enabled``: :data:`AUTH_MODES`), how a process's mode is
read (:func:`tls_mode`, :func:`cluster_auth_mode`, :func:`auth_mode`) and :func:`check_mode_steps`, the part
of ``maintenance.rolling.validate_transition`` that refuses a mode moving more than one step at a time. Pure
functions over plain JSON configs. May import ``opsmgr.errors``, ``opsmgr.automation.config`` and
``opsmgr.automation.rules``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from opsmgr.automation.config import processes_by_name
from opsmgr.automation.rules import CLUSTER_AUTH_MODES, SSL_MODES, TLS_MODES, get
from opsmgr.errors import InvalidInput

AUTH_MODES = ("disabled", "transitionToAuth", "enabled")


def auth_enabled(config: Mapping[str, Any]) -> bool:
    """Whether authentication is on in ``config``."""
    # validate() always fills auth.disabled; a config without it has no auth section, so auth is off.
    return get(config, "auth.disabled") is False


def tls_mode(process: Mapping[str, Any]) -> str:
    """The process's TLS mode on the ``TLS_MODES`` ladder; the legacy ``net.ssl.mode`` maps onto it."""
    mode = get(process, "args2_6.net.tls.mode")
    if isinstance(mode, str):
        return mode
    ssl = get(process, "args2_6.net.ssl.mode")
    return TLS_MODES[SSL_MODES.index(ssl)] if ssl in SSL_MODES else "disabled"


def cluster_auth_mode(process: Mapping[str, Any]) -> str:
    mode = get(process, "args2_6.security.clusterAuthMode")
    return mode if isinstance(mode, str) else "keyFile"


def auth_mode(config: Mapping[str, Any], process: Mapping[str, Any]) -> str:
    """``disabled``, ``transitionToAuth`` (accepts both authenticated and unauthenticated connections, as
    MongoDB's procedure for enabling access control without downtime requires) or ``enabled``."""
    if not auth_enabled(config):
        return "disabled"
    return "transitionToAuth" if get(process, "args2_6.security.transitionToAuth") is True else "enabled"


@dataclass(frozen=True)
class _Ladder:
    what: str
    steps: tuple[str, ...]
    rule: str
    field: Callable[[int, Mapping[str, Any]], str]  # (index, process) -> the JSON path errors name
    mode: Callable[[Mapping[str, Any], Mapping[str, Any]], str]  # (config, process) -> mode


def _tls_field(i: int, process: Mapping[str, Any]) -> str:
    legacy = get(process, "args2_6.net.tls.mode") is None and get(process, "args2_6.net.ssl.mode") is not None
    return f"processes[{i}].args2_6.net.{'ssl' if legacy else 'tls'}.mode"


_LADDERS = (
    _Ladder(
        "the TLS mode",
        TLS_MODES,
        "tls-mode-step",
        _tls_field,
        lambda _c, p: tls_mode(p),
    ),
    _Ladder(
        "the cluster authentication mode",
        CLUSTER_AUTH_MODES,
        "cluster-auth-mode-step",
        lambda i, _p: f"processes[{i}].args2_6.security.clusterAuthMode",
        lambda _c, p: cluster_auth_mode(p),
    ),
    _Ladder(
        "the authentication mode", AUTH_MODES, "auth-mode-step", lambda _i, _p: "auth.disabled", auth_mode
    ),
)


def check_mode_steps(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse a process's TLS, cluster authentication or authentication mode moving more than one step from
    ``old`` to ``new``, and the members of a replica set whose modes change ending up more than one step
    apart (they could no longer talk to each other). Raises :class:`InvalidInput` naming the field, the rule
    and the allowed next step(s)."""
    old_procs = processes_by_name(old)
    for i, proc in enumerate(new.get("processes", [])):
        before = old_procs.get(proc["name"])
        if before is None:
            continue
        for ladder in _LADDERS:
            was, now = ladder.mode(old, before), ladder.mode(new, proc)
            if was not in ladder.steps or now not in ladder.steps:
                continue  # not a mode validate() knows; it has refused it already
            if abs(ladder.steps.index(now) - ladder.steps.index(was)) > 1:
                _refuse_jump(ladder, i, proc, was, now)
    for i, rs in enumerate(new.get("replicaSets", [])):
        _check_spread(old, new, rs, f"replicaSets[{i}]")


def _neighbours(steps: tuple[str, ...], mode: str) -> list[str]:
    i = steps.index(mode)
    return [steps[j] for j in (i - 1, i + 1) if 0 <= j < len(steps)]


def _refuse_jump(ladder: _Ladder, i: int, process: Mapping[str, Any], was: str, now: str) -> NoReturn:
    steps, name = ladder.steps, process["name"]
    toward = steps[steps.index(was) + (1 if steps.index(now) > steps.index(was) else -1)]
    field = ladder.field(i, process)
    hint = (
        f"; set processes[{i}].args2_6.security.transitionToAuth to true first"
        if ladder.rule == "auth-mode-step" and toward == "transitionToAuth"
        else ""
    )
    raise InvalidInput(
        f"{ladder.what} of {name!r} can only move one step at a time ({' <-> '.join(steps)}): "
        f"from {was} the next step toward {now} is {toward}{hint}",
        field=field,
        rule=ladder.rule,
        allowedNext=_neighbours(steps, was),
    )


def _check_spread(old: Mapping[str, Any], new: Mapping[str, Any], rs: Mapping[str, Any], here: str) -> None:
    old_procs, new_procs = processes_by_name(old), processes_by_name(new)
    members = [new_procs[m["host"]] for m in rs.get("members", []) if m.get("host") in new_procs]
    members = [p for p in members if not p.get("disabled", False)]
    # Authentication modes within one config are always adjacent: auth.disabled is deployment-wide.
    for ladder in _LADDERS[:2]:
        modes = {p["name"]: ladder.mode(new, p) for p in members}
        if any(m not in ladder.steps for m in modes.values()):
            continue
        changed = any(
            p["name"] not in old_procs or ladder.mode(old, old_procs[p["name"]]) != modes[p["name"]]
            for p in members
        )
        levels = sorted({ladder.steps.index(m) for m in modes.values()})
        if changed and levels and levels[-1] - levels[0] > 1:
            raise InvalidInput(
                f"the members of {rs['_id']!r} would run with {ladder.what} "
                f"{', '.join(f'{n}={m}' for n, m in modes.items())}: members more than one step apart "
                "cannot talk to each other; move every member one step, then the next",
                field=f"{here}.members",
                rule=ladder.rule.replace("-step", "-spread"),
            )
