"""HTTPS of ``opsmgr server``: the TLS context built from the ``mms.https.*`` keys of ``conf-mms.properties``
and the keyword arguments that make ``uvicorn`` serve with it.

Owns loading the server's certificate and private key (decrypted with ``mms.https.PEMKeyFilePassword``), the
CA of acceptable client certificates (``mms.https.CAFile``), and what ``mms.https.ClientCertificateMode``
means, as in Ops Manager:

- ``none``: with a CA file the server asks for a client certificate and refuses one it cannot verify, but a
  client may present none;
- ``agents_only``: the same handshake, and every request under ``/agents/`` on a connection that presented no
  verified certificate is refused with 403 (the agent API's Basic auth is not enough);
- ``required``: a connection without a verified client certificate is refused in the handshake.

Every problem with the files is a :class:`~opsmgr.server.settings.SettingsError` naming the key, before
anything is served. May import ``opsmgr.jsontypes``, ``opsmgr.errors``, ``opsmgr.tls`` and
``opsmgr.server.settings``; ``uvicorn`` only where the serving protocol is made.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable, MutableMapping

from opsmgr.errors import Forbidden, InvalidInput
from opsmgr.jsontypes import JsonObject
from opsmgr.server.settings import CONF_NAME, ClientCertificateMode, Settings, SettingsError
from opsmgr.tls import load_ca, load_identity

AGENT_PREFIX = "/agents/"

Scope = MutableMapping[str, object]
Receive = Callable[[], Awaitable[MutableMapping[str, object]]]
Send = Callable[[MutableMapping[str, object]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context to serve with, or None for HTTP; raises SettingsError naming the key at fault."""
    if settings.https_pem_key_file is None:
        return None
    # A bare server context: create_default_context would also trust the system's CAs for client certificates.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        load_identity(
            ctx,
            settings.https_pem_key_file,
            settings.https_pem_key_file_password,
            key="mms.https.PEMKeyFile",
            password_key="mms.https.PEMKeyFilePassword",
        )
        if settings.https_ca_file is not None:
            load_ca(ctx, settings.https_ca_file, key="mms.https.CAFile")
    except InvalidInput as exc:
        source = str(settings.conf_path) if settings.conf_path else CONF_NAME
        # The detail already starts with the key: say only what is wrong with it.
        problem = exc.detail.removeprefix(f"{exc.field}: ")
        raise SettingsError(source, [(exc.field or "mms.https.PEMKeyFile", problem)]) from exc
    if settings.https_client_certificate_mode is ClientCertificateMode.REQUIRED:
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif settings.https_ca_file is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def uvicorn_https(settings: Settings) -> JsonObject:
    """``uvicorn.run``'s keyword arguments for the ``mms.https.*`` keys: none for HTTP."""
    ctx = server_context(settings)
    if ctx is None:
        return {}
    options: JsonObject = {"ssl_context_factory": lambda _config, _default: ctx}
    if settings.https_client_certificate_mode is ClientCertificateMode.AGENTS_ONLY:
        options["http"] = agents_need_certificates_protocol()
    return options


def refuse_agent_requests(app: Asgi) -> Asgi:
    """``app`` for a connection that presented no verified client certificate under ``agents_only``: the
    agent API answers 403, the rest is served as usual."""
    error = Forbidden(
        "this server requires a client certificate for agent requests (mms.https.ClientCertificateMode="
        "agents_only): set sslMMSServerClientCertificate in the agent's automation-agent.config",
        error_code="CLIENT_CERTIFICATE_REQUIRED",
    )
    body = json.dumps(error.to_json()).encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(AGENT_PREFIX):
            await app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return guarded


def agents_need_certificates_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, with each connection's app wrapped by :func:`refuse_agent_requests` when its
    TLS handshake brought no verified client certificate (the ASGI scope does not carry it)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: object = AutoHTTPProtocol  # httptools' protocol, or h11's; both keep the app in ``self.app``

    class AgentsNeedCertificates(base):  # type: ignore[misc, valid-type]
        app: Asgi

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            # Called once the handshake is done; with CERT_OPTIONAL a certificate here has been verified.
            if not transport.get_extra_info("peercert"):
                self.app = refuse_agent_requests(self.app)

    return AgentsNeedCertificates
