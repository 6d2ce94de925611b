"""A restore's output is durable when its writer says done, with writeback started while it is written."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from opsmgr import durable_file
from opsmgr.cli import backup as cli_backup
from opsmgr.durable_file import DurableWriter, durable_output


def _synced_inodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the inode of every file ``fdatasync``-ed or ``fsync``-ed from now on."""
    synced: list[int] = []
    for name in ("fdatasync", "fsync"):
        real = getattr(os, name)

        def record(fd: int, real: Any = real) -> None:
            synced.append(os.fstat(fd).st_ino)
            real(fd)

        monkeypatch.setattr(os, name, record)
    return synced


def test_the_bytes_land_in_order_across_windows(tmp_path: Path) -> None:
    chunks = [os.urandom(n) for n in (1, 4095, 4096, 10_000, 3, 70_000)]
    out = tmp_path / "restored.jsonl"
    with durable_output(out, window=4096) as writer:
        for chunk in chunks:
            writer.write(chunk)
    assert out.read_bytes() == b"".join(chunks)
    assert not (tmp_path / "restored.jsonl.partial").exists()
    assert out.stat().st_mode & 0o077 == 0  # a restore's data is readable by its owner only


def test_writeback_starts_each_window_and_waits_for_the_one_before(tmp_path: Path) -> None:
    calls: list[tuple[int, int, int]] = []
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        writer = DurableWriter(fd, window=100)
        writer._ranges = lambda _fd, off, n, flags: calls.append((off, n, flags)) or 0
        writer.write(b"x" * 250)
        writer.write(b"y" * 60)
    finally:
        os.close(fd)
    write, wait = 2, 1 | 2 | 4
    assert calls == [(0, 100, write), (100, 100, write), (0, 100, wait), (200, 100, write), (100, 100, wait)]


def test_a_refused_range_sync_falls_back_to_the_final_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = _synced_inodes(monkeypatch)
    out = tmp_path / "out"
    with durable_output(out, window=10) as writer:
        writer._ranges = lambda *_: -1
        writer.write(b"z" * 35)
        assert writer._ranges is None
    assert out.read_bytes() == b"z" * 35
    assert out.stat().st_ino in synced


def test_an_error_leaves_the_previous_file_and_no_partial(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError), durable_output(out) as writer:
        writer.write(b"half")
        raise RuntimeError("download interrupted")
    assert out.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [out]


def test_the_platform_range_sync_is_usable_here() -> None:
    # Debian's glibc has it: without it every restore would wait for its whole writeback at the end.
    assert durable_file._sync_file_range is not None


def test_a_cli_download_is_synced_with_its_folder_before_it_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"_id": 1}\n' * 50_000
    client = httpx.Client(transport=httpx.MockTransport(lambda _req: httpx.Response(200, content=body)))
    synced = _synced_inodes(monkeypatch)
    out = tmp_path / "snapshot.jsonl"
    job = {"id": "j1", "delivery": {"url": "http://127.0.0.1/download"}}
    written = cli_backup._download(SimpleNamespace(client=client), job, len(body), out)  # type: ignore[arg-type]
    assert written == len(body) and out.read_bytes() == body
    assert out.stat().st_ino in synced
    assert tmp_path.stat().st_ino in synced
