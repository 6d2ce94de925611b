"""gen.key: the installation's secret, and the AEAD encryption of sensitive fields with it.

Owns the ``gen.key`` file (24 random bytes, mode 0600, never overwritten), value encryption with AES-GCM
(AES-192, the key being 24 bytes) into versioned text tokens ``enc:v1:<base64(nonce || ciphertext+tag)>``,
the check value that identifies a key without revealing it (kept in the installation record), secrets
derived from the key for other purposes (e.g. the HTTP Digest nonce secret, so every server sharing the key
and the stores issues nonces the others accept), and helpers that encrypt or decrypt given field paths of a
JSON document (agent API keys, credentials in automation configs, backup encryption keys).

May import ``opsmgr.errors`` and ``cryptography`` only.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from opsmgr.errors import InvalidInput, OpsmgrError, PreflightFailure

log = logging.getLogger(__name__)

KEY_SIZE = 24
NONCE_SIZE = 12
TAG_SIZE = 16
TOKEN_PREFIX = "enc:v1:"
# The version prefix is authenticated too, so a token cannot be relabelled as another format version.
_AAD = TOKEN_PREFIX.encode()
_CHECK_LABEL = "gen.key check value v1"


class DecryptionError(OpsmgrError):
    """A stored value cannot be decrypted: the wrong gen.key, or the value was altered or is not a token."""

    error_code = "DECRYPTION_FAILED"


def is_token(value: object) -> bool:
    """Whether ``value`` looks like a token :meth:`GenKey.encrypt` produced."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


class GenKey:
    """One gen.key. ``repr`` and ``str`` never show the key bytes."""

    __slots__ = ("_aead", "_key", "path")

    def __init__(self, key: bytes, *, path: Path | None = None) -> None:
        if len(key) != KEY_SIZE:
            raise InvalidInput(
                f"gen.key must be {KEY_SIZE} bytes, not {len(key)}", field="gen.key", rule="size"
            )
        self._key = bytes(key)
        self._aead = AESGCM(self._key)
        self.path = path

    def __repr__(self) -> str:
        return f"GenKey(path={str(self.path) if self.path else None!r}, check={self.check_value()[:12]}...)"

    @classmethod
    def generate(cls) -> GenKey:
        """A new random key held in memory only."""
        return cls(os.urandom(KEY_SIZE))

    @classmethod
    def create(cls, path: str | Path) -> GenKey:
        """Write a new random key to ``path`` with mode 0600; refuses if the file already exists."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        key = os.urandom(KEY_SIZE)
        try:
            # O_EXCL: an existing gen.key is never replaced, since every encrypted value depends on it.
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise PreflightFailure(
                f"refusing to overwrite the existing gen.key at {p}: every encrypted value in the backing "
                "databases depends on it",
                path=str(p),
            ) from None
        except OSError as exc:
            raise PreflightFailure(f"cannot create gen.key at {p}: {exc.strerror}", path=str(p)) from exc
        try:
            os.fchmod(fd, 0o600)  # the umask may have dropped bits but never added any; be explicit anyway
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("created a new gen.key at %s", p)
        return cls(key, path=p)

    @classmethod
    def load(cls, path: str | Path) -> GenKey:
        """The key at ``path``; :class:`PreflightFailure` if it is missing, unreadable or not 24 bytes."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise PreflightFailure(
                f"gen.key not found at {p}. Copy the gen.key of this Ops Manager installation there (it is "
                "needed to decrypt the backing databases), or point mms.genKeyPath at it.",
                path=str(p),
            ) from None
        except OSError as exc:
            raise PreflightFailure(f"cannot read gen.key at {p}: {exc.strerror}", path=str(p)) from exc
        if len(data) != KEY_SIZE:
            raise PreflightFailure(
                f"gen.key at {p} is {len(data)} bytes; a gen.key is exactly {KEY_SIZE} bytes", path=str(p)
            )
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "gen.key at %s is accessible to group or others (mode %o); it should be 0600", p, mode
            )
        return cls(data, path=p)

    @classmethod
    def load_or_create(cls, path: str | Path) -> tuple[GenKey, bool]:
        """The key at ``path``, created first if there is no file; the flag says whether it was created."""
        p = Path(path)
        if p.exists():
            return cls.load(p), False
        return cls.create(p), True

    def check_value(self) -> str:
        """A value that identifies this key without revealing it: HMAC-SHA256 of a fixed label, in hex."""
        return self.derive(_CHECK_LABEL).hex()

    def derive(self, label: str) -> bytes:
        """A 32-byte secret for ``label``, independent of the key for any other label."""
        return hmac.new(self._key, label.encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _AAD)
        return TOKEN_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str) -> str:
        if not is_token(token):
            raise DecryptionError(f"not an encrypted value: it does not start with {TOKEN_PREFIX!r}")
        try:
            raw = base64.b64decode(token[len(TOKEN_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError("malformed encrypted value: the payload is not base64") from None
        if len(raw) < NONCE_SIZE + TAG_SIZE:
            raise DecryptionError("malformed encrypted value: too short to hold a nonce and a tag")
        try:
            plain = self._aead.decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], _AAD)
        except InvalidTag:
            raise DecryptionError(
                "cannot decrypt a stored value: it was encrypted with a different gen.key, or it was altered"
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError("decrypted value is not UTF-8 text") from None

    def encrypt_fields(self, doc: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
        """A copy of ``doc`` with the strings at ``paths`` encrypted (see :func:`transform_fields`)."""
        return transform_fields(doc, paths, self.encrypt)

    def decrypt_fields(self, doc: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
        """A copy of ``doc`` with the tokens at ``paths`` decrypted (see :func:`transform_fields`)."""
        return transform_fields(doc, paths, self.decrypt)


def transform_fields(doc: dict[str, Any], paths: Iterable[str], fn: Callable[[str], str]) -> dict[str, Any]:
    """A deep copy of ``doc`` with ``fn`` applied to the value at each dotted path.

    As in MongoDB, a path crosses arrays implicitly: ``auth.usersWanted.initPwd`` reaches the ``initPwd`` of
    every element of ``auth.usersWanted``. Absent fields and ``None`` values are left alone; any other
    non-string value at a path is an :class:`InvalidInput` naming the path.
    """
    out = copy.deepcopy(doc)
    for path in paths:
        _apply(out, path.split("."), path, fn)
    return out


def _apply(node: Any, parts: list[str], path: str, fn: Callable[[str], str]) -> None:
    if isinstance(node, list):
        for item in node:
            _apply(item, parts, path, fn)
        return
    if not isinstance(node, dict) or parts[0] not in node:
        return
    head, rest = parts[0], parts[1:]
    if rest:
        _apply(node[head], rest, path, fn)
        return
    value = node[head]
    if isinstance(value, list):
        node[head] = [_leaf(v, path, fn) for v in value]
    else:
        node[head] = _leaf(value, path, fn)


def _leaf(value: Any, path: str, fn: Callable[[str], str]) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"{path} must be a string to be encrypted, not {type(value).__name__}", field=path, rule="string"
        )
    return fn(value)
