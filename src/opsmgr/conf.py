"""Configuration files, read alike by the server and the agent.

``conf-mms.properties`` (a server's) and ``automation-agent.config`` (an agent's) are Java-properties files
(``opsmgr.properties`` owns the syntax). This module owns what both readers need on top of it:

- reading a conf file (:func:`read_properties_file`): one that cannot be read or is not UTF-8 text is a
  :class:`ConfUnreadable`; :func:`read_conf` is the same read with every problem a :class:`SettingsError`;
- a documented key (:class:`Key`) and :func:`check_keys`, which reports every unknown key (with the closest
  known one), missing required key and malformed value at once, each by its name;
- the value parsers of documented keys (host, bounded numbers, booleans, URLs, paths, database URIs, log
  levels): text in, a value or a ``ValueError`` whose message completes "KEY: ..." out;
- the URIs of a server's three backing databases as its ``conf-mms.properties`` names them
  (:func:`backing_uris`): the server and the backing agent on its host resolve them alike (a relative SQLite
  path against the file's directory; the three must be three different databases).

What each key means belongs to whoever reads the file (``server.settings``, ``agent.settings``).

May import ``opsmgr.errors``, ``opsmgr.properties`` and ``opsmgr.store.backing``; SQLAlchemy's URL parser and
``opsmgr.store.backing`` only inside the functions that need them, so that an agent reading its own config
loads neither.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opsmgr.errors import InvalidInput, PreflightFailure
from opsmgr.properties import parse_properties

if TYPE_CHECKING:
    from opsmgr.store.backing import BackingStores

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "WARNING": "WARNING", "ERROR": "ERROR"}
_STORE_SCHEMES = {"sqlite", "postgresql", "postgres", "postgresql+psycopg"}


class SettingsError(PreflightFailure):
    """The configuration cannot be used; ``problems`` lists ``(key, what is wrong)`` for each problem."""

    error_code = "INVALID_CONFIGURATION"

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  - {key}: {problem}" for key, problem in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"{source} has {len(problems)} {noun}:\n{lines}",
            problems=[{"key": k, "problem": p} for k, p in problems],
        )
        self.problems = tuple(problems)


class ConfUnreadable(InvalidInput):
    """A conf file that cannot be read (``reason``: the system's words) or is not UTF-8 text."""

    def __init__(self, path: Path, problem: str, reason: str) -> None:
        super().__init__(f"{path}: {problem}", field="(file)", rule="conf-file")
        self.path = path
        self.problem = problem  # "cannot read it: <reason>" or "not UTF-8 text: ..."
        self.reason = reason


def read_properties_file(path: Path) -> dict[str, str]:
    """The keys and values of a conf file; :class:`ConfUnreadable`, or ``InvalidInput`` for its syntax."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = str(exc.strerror or exc)
        raise ConfUnreadable(path, f"cannot read it: {reason}", reason) from exc
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise ConfUnreadable(path, reason, reason) from exc
    return parse_properties(text, source=str(path))


def read_conf(path: Path) -> dict[str, str]:
    """:func:`read_properties_file` with every problem a :class:`SettingsError` naming the file."""
    try:
        return read_properties_file(path)
    except ConfUnreadable as exc:
        raise SettingsError(str(path), [("(file)", exc.problem)]) from exc
    except InvalidInput as exc:
        raise SettingsError(str(path), [(exc.field or "(syntax)", exc.detail)]) from exc


# Value parsers: text (already stripped, never empty) and the base directory for relative paths. They raise
# ValueError with a message that completes "KEY: ...".


def host(text: str, _base: Path) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(text):
        raise ValueError(f"not an IP address or host name: {text!r}")
    return text


def int_in(low: int, high: int) -> Callable[[str, Path], int]:
    def parse(text: str, _base: Path) -> int:
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, not {text!r}")
        return int(text)

    return parse


def float_in(low: float, high: float) -> Callable[[str, Path], float]:
    def parse(text: str, _base: Path) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"must be a number from {low:g} to {high:g}, not {text!r}")
        return value

    return parse


def boolean(text: str, _base: Path) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"must be true or false, not {text!r}")
    return lowered == "true"


def http_url(text: str, _base: Path) -> str:
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or re.search(r"\s", text):
        raise ValueError(f"must be an http:// or https:// URL with a host, not {text!r}")
    return text.rstrip("/")


def relative_path(text: str, base: Path) -> Path:
    return (base / Path(text).expanduser()).resolve()


def store_uri(text: str, base: Path) -> str:
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError(f"not a database URI: {text!r}") from None
    if url.drivername not in _STORE_SCHEMES:
        raise ValueError(
            "backing databases are SQLite (sqlite:///FILE) or PostgreSQL (postgresql://...), "
            f"not {url.drivername}"
        )
    if url.drivername != "sqlite":
        if not url.database:
            raise ValueError(f"a PostgreSQL URI must name the database: {url.render_as_string()!r}")
        return text
    if not url.database or url.database == ":memory:":
        raise ValueError("an in-memory SQLite database would lose everything on restart; name a file")
    return url.set(database=str(relative_path(url.database, base))).render_as_string(hide_password=False)


def same_database(a: str, b: str) -> bool:
    import sqlalchemy as sa

    def identity(uri: str) -> tuple[str, str, int, str]:
        url = sa.engine.make_url(uri)
        if url.drivername == "sqlite":
            return ("sqlite", "", 0, url.database or "")
        return ("postgresql", (url.host or "").lower(), url.port or 5432, url.database or "")

    return identity(a) == identity(b)


def log_level(text: str, _base: Path) -> str:
    level = _LOG_LEVELS.get(text.upper())
    if level is None:
        raise ValueError(f"must be one of DEBUG, INFO, WARNING, ERROR, not {text!r}")
    return level


def as_text(value: str, _base: Path) -> str:
    return value


@dataclass(frozen=True, slots=True)
class Key:
    """One documented configuration key: its name, the field it sets, and its rules."""

    name: str
    attr: str
    description: str
    default: str | None  # None: required; "": optional with no value
    parse: Callable[[str, Path], Any]


def check_keys(
    values: Mapping[str, str], keys: Sequence[Key], base_dir: Path, *, given: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Each key's value by its ``attr`` (None when empty), and the problems: unknown keys, required keys
    missing, malformed values. ``given`` overrides a key's text (a command-line option)."""
    by_name = {k.name: k for k in keys}
    problems: list[tuple[str, str]] = []
    for name in values:
        if name not in by_name:
            close = difflib.get_close_matches(name, by_name, n=1)
            problems.append((name, "unknown key" + (f" (did you mean {close[0]}?)" if close else "")))
    parsed: dict[str, Any] = {}
    for key in keys:
        text = (given or {}).get(key.name) or values.get(key.name, "").strip()
        if not text:
            text = key.default or ""
        if not text:
            if key.default is None:
                problems.append((key.name, "is required"))
            parsed[key.attr] = None
            continue
        try:
            parsed[key.attr] = key.parse(text, base_dir)
        except ValueError as exc:
            problems.append((key.name, str(exc)))
    return parsed, problems


def different_databases(uris: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """``(key, URI)`` of the backing databases, in order: a problem for each that repeats an earlier one."""
    problems = []
    for i, (name, uri) in enumerate(uris):
        for other, other_uri in uris[:i]:
            if uri is not None and other_uri is not None and same_database(uri, other_uri):
                problems.append((name, f"is the same database as {other}; the three must be different"))
    return problems


def backing_uris(conf_path: Path) -> BackingStores[str]:
    """The URIs of the three backing databases a server's ``conf-mms.properties`` names, resolved as the
    server resolves them; a :class:`SettingsError` names every problem with them."""
    from opsmgr.store.backing import BACKING, BackingStores

    resolved = conf_path.expanduser().resolve()
    values = read_conf(resolved)
    keys = [Key(b.conf_key, b.name.value, b.label, None, store_uri) for b in BACKING]
    parsed, problems = check_keys({k.name: values.get(k.name, "") for k in keys}, keys, resolved.parent)
    problems += different_databases([(k.name, parsed.get(k.attr)) for k in keys])
    if problems:
        raise SettingsError(str(resolved), problems)
    return BackingStores(parsed["app"], parsed["snapshot"], parsed["oplog"])
