"""TLS on the client side of every opsmgr HTTP link: agents to their server, the CLI to the public API, and a
primary to its secondary.

Owns :func:`client_verify`, the one place that turns a trusted CA file, whether the server's certificate must
be valid, and an optional client certificate into the ``verify=`` value ``httpx`` takes; :func:`load_identity`
(a certificate with its possibly encrypted private key) and :func:`load_ca`, shared with the server side
(``opsmgr.server.tls``); and :func:`tls_failure`, the sentence an operator reads when a TLS handshake fails
(an untrusted server certificate, a client certificate the server wanted). Problems with the files are
:class:`~opsmgr.errors.InvalidInput` naming the setting that gave them (``Setting`` names), never a prompt for
a password on the terminal. May import ``opsmgr.errors`` only.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from opsmgr.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Setting:
    """The names under which a consumer takes its TLS files, so that a problem names what to fix."""

    ca_file: str
    client_cert: str = "client certificate"
    client_cert_password: str = "client certificate password"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        return exc.strerror
    reason = getattr(exc, "reason", None)
    return str(reason or exc).strip() or type(exc).__name__


def load_identity(
    ctx: ssl.SSLContext, pem: Path, password: str | None, *, key: str, password_key: str
) -> None:
    """Loads the certificate (chain) and private key of ``pem`` into ``ctx``; ``password`` decrypts an
    encrypted key. Raises :class:`InvalidInput` naming ``key`` or ``password_key``."""
    asked = False

    def give_password() -> str:
        # Without this callback OpenSSL would prompt on the terminal for an encrypted key's password.
        nonlocal asked
        asked = True
        return password or ""

    try:
        ctx.load_cert_chain(pem, password=give_password)
    except ssl.SSLError as exc:
        if asked and password is None:
            raise InvalidInput(
                f"{key}: the private key in {pem} is encrypted: give its password with {password_key}",
                field=password_key,
            ) from exc
        if asked:
            raise InvalidInput(
                f"{password_key}: does not decrypt the private key in {pem} ({_reason(exc)})",
                field=password_key,
            ) from exc
        raise InvalidInput(
            f"{key}: {pem} must hold a PEM certificate and its private key ({_reason(exc)})", field=key
        ) from exc
    except OSError as exc:
        raise InvalidInput(f"{key}: cannot read {pem}: {_reason(exc)}", field=key) from exc


def load_ca(ctx: ssl.SSLContext, ca_file: Path, *, key: str) -> None:
    """Trusts the PEM certificates of ``ca_file`` in ``ctx``; raises :class:`InvalidInput` naming ``key``."""
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise InvalidInput(f"{key}: {ca_file} holds no PEM certificate ({_reason(exc)})", field=key) from exc
    except OSError as exc:
        raise InvalidInput(f"{key}: cannot read {ca_file}: {_reason(exc)}", field=key) from exc


def client_verify(
    ca_file: Path | None,
    require_valid: bool = True,
    *,
    client_cert: Path | None = None,
    client_cert_password: str | None = None,
    names: Setting,
) -> ssl.SSLContext | bool:
    """``httpx``'s ``verify=``: the system's trusted CAs (``True``) when nothing is given; else a context that
    trusts only ``ca_file`` (when given), checks the server's certificate and name unless ``require_valid`` is
    false, and presents ``client_cert`` (a PEM with the certificate and its key) when the server asks."""
    if ca_file is None and client_cert is None:
        return require_valid
    ctx = ssl.create_default_context() if ca_file is None else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        load_ca(ctx, ca_file, key=names.ca_file)
    if not require_valid:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        load_identity(
            ctx,
            client_cert,
            client_cert_password,
            key=names.client_cert,
            password_key=names.client_cert_password,
        )
    return ctx


def tls_failure(exc: BaseException) -> str | None:
    """What went wrong in the TLS handshake behind ``exc`` (an ``httpx`` error), or None if it was not TLS."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            reason = current.verify_message or _reason(current)
            return f"the server's TLS certificate was not accepted: {reason}"
        if isinstance(current, ssl.SSLError):
            return f"the TLS handshake failed: {_reason(current)}"
        current = current.__cause__ or current.__context__
    return None
