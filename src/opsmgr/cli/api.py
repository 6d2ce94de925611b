"""The public API as the command line reaches it: a programmatic API key over HTTP Digest, answers as JSON,
and every failure turned into an :class:`~opsmgr.errors.OpsmgrError` whose detail is the server's own
message, so commands print it and exit non-zero instead of showing a traceback.

Also the Typer options every API command shares (``--url``, ``--public-key``, ``--private-key``,
``--ca-file``; each also read from ``OPSMGR_URL``, ``OPSMGR_PUBLIC_KEY``, ``OPSMGR_PRIVATE_KEY``,
``OPSMGR_CA_FILE`` so keys need not sit in shell history). Over HTTPS the server's certificate is verified
against ``--ca-file`` (else the system's CAs), and a server that requires client certificates gets the one
in ``OPSMGR_CLIENT_CERT`` (PEM, certificate and key; ``OPSMGR_CLIENT_CERT_PASSWORD`` if the key is
encrypted); a certificate the CLI cannot verify ends the command with the reason.

:func:`public_api` is the client of one command whose failures end it through :func:`fail` (the error's
message and a non-zero exit, for every command), and :func:`watch` the progress bar of long work (restores,
builds, drills) polled until it ends.

May import ``opsmgr.errors`` and ``opsmgr.tls``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from opsmgr.errors import OpsmgrError, PreflightFailure
from opsmgr.tls import Setting, client_verify, tls_failure

PUBLIC_PREFIX = "/api/public/v1.0"
# A list read whole: the largest page Ops Manager serves, and a bound on the pages a list may have.
MAX_PER_PAGE = 500
MAX_PAGES = 1000

UrlOpt = typer.Option(..., "--url", envvar="OPSMGR_URL", help="Base URL of the opsmgr server.")
PublicKeyOpt = typer.Option(..., "--public-key", envvar="OPSMGR_PUBLIC_KEY", help="API key's public part.")
PrivateKeyOpt = typer.Option(
    ..., "--private-key", envvar="OPSMGR_PRIVATE_KEY", help="API key's private part.", show_default=False
)
GroupOpt = typer.Option(..., "--group", envvar="OPSMGR_GROUP", help="Project (group) id.")
CaFileOpt = typer.Option(
    None,
    "--ca-file",
    envvar="OPSMGR_CA_FILE",
    dir_okay=False,
    help="PEM file of the CA that signed the server's HTTPS certificate (default: the system's CAs).",
)
CLI_TLS = Setting(
    ca_file="--ca-file (OPSMGR_CA_FILE)",
    client_cert="OPSMGR_CLIENT_CERT",
    client_cert_password="OPSMGR_CLIENT_CERT_PASSWORD",
)
TLS_HINT = (
    "give the CA that signed the server's certificate with --ca-file (or OPSMGR_CA_FILE), and a client "
    "certificate in OPSMGR_CLIENT_CERT if the server requires one"
)

err = Console(stderr=True, soft_wrap=True)


def fail(exc: OpsmgrError) -> NoReturn:
    label = "preflight check failed" if isinstance(exc, PreflightFailure) else "error"
    err.print(f"[bold red]{label}:[/] {exc.detail}", highlight=False)
    raise typer.Exit(2 if isinstance(exc, PreflightFailure) else 1)


class ApiFailed(OpsmgrError):
    """The server answered with an error, or could not be reached."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        text = body.get("detail") or body.get("reason") or body.get("errorCode")
        if text:
            return str(text)
    return str(body)[:300]


class PublicApi:
    """A small client of ``/api/public/v1.0``; paths are given without that prefix."""

    def __init__(
        self,
        url: str,
        public_key: str,
        private_key: str,
        *,
        ca_file: Path | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        client_cert = os.environ.get(CLI_TLS.client_cert)
        verify = client_verify(
            ca_file,
            client_cert=Path(client_cert) if client_cert else None,
            client_cert_password=os.environ.get(CLI_TLS.client_cert_password) or None,
            names=CLI_TLS,
        )
        self.client = httpx.Client(
            base_url=url.rstrip("/") + PUBLIC_PREFIX,
            auth=httpx.DigestAuth(public_key, private_key),
            timeout=timeout_s,
            verify=verify,
        )

    def __enter__(self) -> PublicApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        try:
            response = self.client.request(method, path, json=body, params=params or None)
        except httpx.HTTPError as exc:
            raise ApiFailed(unreachable(str(self.client.base_url), exc)) from exc
        if response.status_code >= 400:
            detail = f"{method} {path}: HTTP {response.status_code}: {_message(response)}"
            raise ApiFailed(detail, response.status_code)
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def get_all(self, path: str, **params: Any) -> dict[str, Any]:
        """A list resource whole: its first page with ``results`` holding the items of every page, read by
        following the ``next`` links (only to this server: the key is not sent elsewhere)."""
        first = self.get(path, itemsPerPage=MAX_PER_PAGE, **params)
        results, page, pages = list(first["results"]), first, 1
        while (href := _next_href(page)) is not None:
            origin = str(self.client.base_url.copy_with(path="/", query=None))
            if not href.startswith(origin) or pages >= MAX_PAGES:
                raise ApiFailed(f"GET {path}: the list's next page {href[:200]} is not one to follow")
            page, pages = self.get(href), pages + 1
            results += page["results"]
        return {**first, "results": results}

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)


def _next_href(page: dict[str, Any]) -> str | None:
    return next((str(link["href"]) for link in page.get("links") or [] if link.get("rel") == "next"), None)


def unreachable(url: str, exc: httpx.HTTPError) -> str:
    """Why ``url`` gave no answer, with what to do when it was the TLS handshake."""
    tls = tls_failure(exc)
    if tls is not None:
        return f"cannot reach {url}: {tls}; {TLS_HINT}"
    if url.startswith("https://") and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        # With TLS 1.3 a server that refuses the client's certificate (or its absence) often just closes
        # the connection: the client never reads the alert that would say so.
        return (
            f"cannot reach {url}: the server closed the connection without answering "
            f"({exc or type(exc).__name__}); if it requires client certificates, {TLS_HINT}"
        )
    return f"cannot reach {url}: {exc}"


@contextmanager
def public_api(
    url: str, public_key: str, private_key: str, ca_file: Path | None = None
) -> Iterator[PublicApi]:
    """The client of one command: an :class:`OpsmgrError` raised in the block ends it (:func:`fail`)."""
    try:
        with PublicApi(url, public_key, private_key, ca_file=ca_file) as api:
            yield api
    except OpsmgrError as exc:
        fail(exc)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[float, str], None]]:
    """A terminal progress bar; yields ``update(fraction, status)`` with fraction in 0..1."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    ) as bar:
        task = bar.add_task(description, total=1.0, status="")

        def update(fraction: float, status: str) -> None:
            bar.update(task, completed=max(0.0, min(1.0, fraction)), status=status)

        yield update


def watch(
    read: Callable[[], dict[str, Any]],
    fraction: Callable[[dict[str, Any]], float],
    finished: Callable[[dict[str, Any]], bool],
    *,
    description: str,
    status: Callable[[dict[str, Any]], str],
    interval_s: float = 0.5,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Polls ``read`` until ``finished`` (or the timeout) drawing a progress bar; returns the last reading."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with progress_bar(description) as update:
        while True:
            current = read()
            update(fraction(current), status(current))
            if finished(current):
                return current
            if deadline is not None and time.monotonic() > deadline:
                raise ApiFailed(f"still not finished after {timeout_s:.0f} s: {status(current)}")
            time.sleep(interval_s)
