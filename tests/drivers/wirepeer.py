"""A MongoDB wire-protocol peer for tests: a real TCP server on 127.0.0.1 that speaks OP_MSG (and OP_QUERY
with OP_REPLY for a legacy handshake), records every command document it receives, decoded with ``bson``,
and answers from a script. It checks what a client *sends*; it models none of MongoDB's behaviour beyond
the handshake.

    with WirePeer() as peer:
        peer.script("replSetGetStatus", {"set": "rs0", ...})      # answered with ok: 1 added
        ...point a client at peer.port...
        assert peer.last("replSetStepDown")["secondaryCatchUpPeriodSecs"] == 10

Run as a program (``python wirepeer.py --config FILE``) it stands in for a ``mongod`` binary: it listens on
the config file's ``net.port`` and exits on ``shutdown``, so process supervision can be tested without
MongoDB. ``WIREPEER_STUBBORN=1`` makes it ignore ``shutdown`` and SIGTERM; ``WIREPEER_FAIL=message``
makes it print the message and exit 2 at once, like a mongod given a bad option.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson.codec_options import CodecOptions

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
_CHECKSUM_PRESENT = 1 << 0
_MORE_TO_COME = 1 << 1
_HEADER = struct.Struct("<iiii")
_CODEC = CodecOptions(document_class=dict, tz_aware=True)


class _Close:
    """Reply marker: close the connection instead of answering (as mongod does on ``shutdown``)."""


CLOSE = _Close()
Reply = Mapping[str, Any] | Callable[[dict[str, Any]], Any] | _Close

HANDSHAKE = frozenset({"hello", "isMaster", "ismaster"})


def hello_reply(**overrides: Any) -> dict[str, Any]:
    """What a MongoDB 7.0 server answers to ``hello`` (maxWireVersion 21), writable, with sessions."""
    # No topologyVersion: the client then polls instead of holding a streaming hello open.
    reply: dict[str, Any] = {
        "helloOk": True,
        "isWritablePrimary": True,
        "ismaster": True,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": dt.datetime.now(dt.UTC),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "readOnly": False,
    }
    reply.update(overrides)
    return reply


@dataclass(frozen=True)
class Received:
    """One command as it arrived: the opcode it came in and the body with document sequences folded in."""

    opcode: int
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return next(iter(self.body))

    @property
    def db(self) -> str:
        return str(self.body.get("$db", "admin"))

    @property
    def command(self) -> dict[str, Any]:
        """The body without what the driver adds to every command (``$db``, ``lsid``, ``$readPreference``,
        ``$clusterTime``...), i.e. the command document as MongoDB's reference shows it."""
        return {k: v for k, v in self.body.items() if not k.startswith("$") and k != "lsid"}


class WirePeer:
    def __init__(
        self, *, hello: Mapping[str, Any] | None = None, version: str = "7.0.14", port: int = 0
    ) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._hello = hello_reply(**(hello or {}))
        self._version = version
        self._request_ids = itertools.count(1)
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.on_shutdown: Callable[[], None] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- scripting and inspection ----------------------------------------------------------------------------

    def script(self, command: str, *replies: Reply) -> None:
        """Answer ``command`` with ``replies`` in turn, the last one from then on. A mapping is sent with
        ``ok: 1`` unless it says otherwise; a callable gets the command body and returns the reply."""
        with self._lock:
            self._scripts[command] = list(replies)

    def received(self, command: str | None = None, *, handshake: bool = False) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self._received
                if (command is None or r.name == command) and (handshake or r.name not in HANDSHAKE)
            ]

    def last(self, command: str) -> dict[str, Any]:
        """The command document of the latest ``command`` received; fails when there is none."""
        found = self.received(command)
        assert found, f"the peer received no {command!r}; it received {[r.name for r in self.received()]}"
        return found[-1].command

    # -- replies ---------------------------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> dict[str, Any] | _Close:
        name = next(iter(body))
        with self._lock:
            queue = self._scripts.get(name)
            scripted = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else None
        if scripted is None:
            reply: Any = self._default(name)
        elif callable(scripted):
            reply = scripted(body)
        else:
            reply = scripted
        if isinstance(reply, _Close):
            return reply
        return {"ok": 1.0, **reply}

    def _default(self, name: str) -> dict[str, Any] | _Close:
        if name in HANDSHAKE:
            return {**self._hello, "localTime": dt.datetime.now(dt.UTC)}
        if name in ("ping", "endSessions"):
            return {}
        if name == "buildInfo":
            parts = [int(p) for p in self._version.split(".")]
            return {"version": self._version, "versionArray": [*parts, 0]}
        if name == "shutdown":
            if self.on_shutdown is not None:
                self.on_shutdown()
            return CLOSE
        return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59, "codeName": "CommandNotFound"}

    # -- the server ------------------------------------------------------------------------------------------

    def start(self) -> WirePeer:
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def serve_forever(self) -> None:
        self._accept_loop()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed by stop()
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(conn, _HEADER.size)
                if header is None:
                    return
                length, request_id, _, opcode = _HEADER.unpack(header)
                payload = _recv_exact(conn, length - _HEADER.size)
                if payload is None:
                    return
                if opcode == OP_MSG:
                    flags, body = _parse_op_msg(payload)
                elif opcode == OP_QUERY:
                    flags, body = 0, _parse_op_query(payload)
                else:
                    return  # OP_COMPRESSED and the removed legacy opcodes are never negotiated here
                with self._lock:
                    self._received.append(Received(opcode, body))
                reply = self._answer(body)
                if isinstance(reply, _Close):
                    return
                if flags & _MORE_TO_COME:
                    continue
                conn.sendall(self._encode(reply, request_id, opcode))
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _encode(self, reply: dict[str, Any], response_to: int, opcode: int) -> bytes:
        doc = bson.encode(reply)
        if opcode == OP_MSG:
            payload = struct.pack("<I", 0) + b"\x00" + doc
            reply_opcode = OP_MSG
        else:
            payload = struct.pack("<iqii", 0, 0, 0, 1) + doc
            reply_opcode = OP_REPLY
        header = _HEADER.pack(_HEADER.size + len(payload), next(self._request_ids), response_to, reply_opcode)
        return header + payload

    def stop(self) -> None:
        # shutdown() rather than close() alone: on Linux only it wakes a thread blocked in accept().
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            if thread is not threading.current_thread():  # stop() may be called from a handler
                thread.join(timeout=5)

    def __enter__(self) -> WirePeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(n - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end].decode(), end + 1


def _parse_op_msg(payload: bytes) -> tuple[int, dict[str, Any]]:
    """OP_MSG: flag bits, then sections: kind 0 is the body, kind 1 a named document sequence (pymongo's
    way of sending ``documents`` of an insert), folded into the body under its identifier."""
    (flags,) = struct.unpack_from("<I", payload)
    end = len(payload) - (4 if flags & _CHECKSUM_PRESENT else 0)
    pos, body, sequences = 4, None, {}
    while pos < end:
        kind = payload[pos]
        pos += 1
        (size,) = struct.unpack_from("<i", payload, pos)
        if kind == 0:
            body = bson.decode(payload[pos : pos + size], codec_options=_CODEC)
        else:
            identifier, docs_at = _cstring(payload, pos + 4)
            sequences[identifier] = bson.decode_all(payload[docs_at : pos + size], codec_options=_CODEC)
        pos += size
    assert body is not None, "OP_MSG without a body section"
    body.update(sequences)
    return flags, body


def _parse_op_query(payload: bytes) -> dict[str, Any]:
    """OP_QUERY on ``<db>.$cmd``: flags, collection name, skip, limit, then the command (maybe in $query)."""
    collection, pos = _cstring(payload, 4)
    pos += 8
    (size,) = struct.unpack_from("<i", payload, pos)
    doc: dict[str, Any] = bson.decode(payload[pos : pos + size], codec_options=_CODEC)
    if "$query" in doc:
        doc = {**doc.pop("$query"), **doc}
    doc.setdefault("$db", collection.split(".", 1)[0])
    return doc


def main(argv: list[str]) -> int:
    """Stand in for ``mongod --config FILE``."""
    import yaml

    failure = os.environ.get("WIREPEER_FAIL")
    if failure:
        print(failure, flush=True)
        return 2
    with open(argv[argv.index("--config") + 1]) as f:
        config = yaml.safe_load(f)
    stubborn = os.environ.get("WIREPEER_STUBBORN") == "1"
    peer = WirePeer(version=os.environ.get("WIREPEER_VERSION", "7.0.14"), port=int(config["net"]["port"]))
    peer.script("serverStatus", {"pid": os.getpid(), "connections": {"current": 1}})
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        peer.script("shutdown", {"ok": 0.0, "errmsg": "not today", "code": 1, "codeName": "InternalError"})
    else:
        peer.on_shutdown = lambda: os._exit(0)
    print(f"wirepeer standing in for mongod on port {peer.port}", flush=True)
    peer.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
