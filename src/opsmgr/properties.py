"""Java-properties files, the format of ``conf-mms.properties`` and ``automation-agent.config``.

Owns parsing and writing only (comments with ``#``/``!``, ``key=value``, ``key:value`` and ``key value``
separators, backslash line continuations, ``\\t \\n \\r \\f \\uXXXX`` escapes); what the keys mean belongs
to whoever reads the file. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import re
from pathlib import Path

from opsmgr.errors import InvalidInput

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
# java.util.Properties ends lines only at these (str.splitlines also splits at \f, \v, \x85, \u2028, ...)
_LINE_END = re.compile(r"\r\n|\r|\n")
# ... and strips only these as whitespace (str.strip also strips \u00a0 and other Unicode spaces).
_BLANK = " \t\f"


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuation lines; yields (first physical line number, logical line) without comments."""
    out: list[tuple[int, str]] = []
    pending: str | None = None
    start = 0
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        line = raw.lstrip(_BLANK)
        if pending is None:
            if not line or line[0] in "#!":
                continue
            start = number
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = (pending or "") + line[:-1]
            continue
        out.append((start, (pending or "") + line))
        pending = None
    if pending is not None:
        out.append((start, pending))
    return out


def _unescape(text: str, where: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 == len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u":
            code = text[i + 2 : i + 6]
            if len(code) != 4 or not all(ch in "0123456789abcdefABCDEF" for ch in code):
                raise InvalidInput(
                    f"{where}: malformed \\uXXXX escape", field=where, rule="properties-syntax"
                )
            out.append(chr(int(code, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    try:
        # \uXXXX escapes of characters beyond the BMP come as UTF-16 surrogate pairs; join them.
        return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{where}: unpaired surrogate escape", field=where, rule="properties-syntax"
        ) from None


def _split_key(line: str) -> tuple[str, str]:
    """Split at the first unescaped whitespace, ``=`` or ``:``, as java.util.Properties does."""
    i = 0
    while i < len(line) and line[i] not in _BLANK + "=:":
        i += 2 if line[i] == "\\" else 1
    key, rest = line[:i], line[i:].lstrip(_BLANK)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANK)
    return key, rest


def parse_properties(text: str, *, source: str = "<properties>") -> dict[str, str]:
    """Parse properties text; later keys override earlier ones, as java.util.Properties does."""
    result: dict[str, str] = {}
    for number, line in _logical_lines(text):
        where = f"{source}:{number}"
        key, value = _split_key(line)
        result[_unescape(key, where)] = _unescape(value, where)
    return result


def load_properties(path: str | Path) -> dict[str, str]:
    p = Path(path)
    return parse_properties(p.read_text(encoding="utf-8"), source=str(p))


def _escape(text: str, *, is_key: bool) -> str:
    out: list[str] = []
    for i, c in enumerate(text):
        if c == "\\":
            out.append("\\\\")
        elif c in "\t\n\r\f":
            out.append("\\" + {"\t": "t", "\n": "n", "\r": "r", "\f": "f"}[c])
        elif (is_key and c in "=:#! ") or (i == 0 and c == " "):
            # A value is read literally from its first non-blank character on, so only a leading blank needs
            # escaping there; ":" and "=" stay readable in URIs.
            out.append("\\" + c)
        elif ord(c) > 0x7E or ord(c) < 0x20:
            units = c.encode("utf-16-be", "surrogatepass")
            out.extend(f"\\u{units[j]:02x}{units[j + 1]:02x}" for j in range(0, len(units), 2))
        else:
            out.append(c)
    return "".join(out)


def dump_properties(values: dict[str, str], *, header: str | None = None) -> str:
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    lines += [f"{_escape(k, is_key=True)}={_escape(v, is_key=False)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"
