"""A restore's output is durable when its writer says done: written with O_DIRECT where the filesystem takes
it, otherwise through the page cache with writeback started while it is written."""

from __future__ import annotations

import errno
import fcntl
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


def _takes_o_direct(folder: Path) -> bool:
    try:
        fd = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    os.close(fd)
    (folder / "probe").unlink()
    return True


CHUNKS = (1, 4095, 4096, 10_000, 3, 70_000)  # across 4 KiB windows and aligned writes, ending unaligned


@pytest.mark.parametrize("direct", [True, False])
def test_the_bytes_land_in_order_across_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    synced = _synced_inodes(monkeypatch)
    chunks = [os.urandom(n) for n in CHUNKS]
    out = tmp_path / "restored.jsonl"
    with durable_output(out, window=4096, direct=direct) as writer:
        for chunk in chunks:
            writer.write(chunk)
        flags = fcntl.fcntl(writer.fd, fcntl.F_GETFL)
    # Wherever the filesystem takes O_DIRECT, the writer uses it (without, it spends CPU in the page cache).
    assert bool(flags & os.O_DIRECT) is (direct and _takes_o_direct(tmp_path))
    assert out.read_bytes() == b"".join(chunks)  # the padding of the last aligned write is cut off
    assert out.stat().st_ino in synced and tmp_path.stat().st_ino in synced
    assert not (tmp_path / "restored.jsonl.partial").exists()
    assert out.stat().st_mode & 0o077 == 0  # a restore's data is readable by its owner only


def test_a_filesystem_refusing_o_direct_at_open_gets_the_page_cache_with_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")  # what tmpfs answered before Linux 6.6
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    ranges: list[int] = []

    def started(_fd: int, offset: int, _n: int, _flags: int) -> int:
        ranges.append(offset)
        return 0

    with durable_output(tmp_path / "out", window=4096) as writer:
        writer._ranges = started
        writer.write(b"w" * 10_000)
    assert (tmp_path / "out").read_bytes() == b"w" * 10_000
    assert ranges[:2] == [0, 4096], "writeback of each window started as it was written"


def test_a_direct_write_refused_midway_goes_on_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    direct_writes: list[int] = []

    def refuse_the_second(fd: int, data: bytes) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            direct_writes.append(len(data))
            if len(direct_writes) == 2:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", refuse_the_second)
    chunks = [os.urandom(n) for n in CHUNKS]
    out = tmp_path / "out"
    started: list[int] = []
    with durable_output(out, window=4096) as writer:
        writer._ranges = lambda _fd, offset, _n, _flags: started.append(offset) or 0
        for chunk in chunks:
            writer.write(chunk)
        assert not fcntl.fcntl(writer.fd, fcntl.F_GETFL) & os.O_DIRECT
    assert direct_writes == [4096, 4096]
    assert out.read_bytes() == b"".join(chunks)
    # From the refusal on, the page cache's windows: the writeback of each full one started.
    assert max(started) == (sum(CHUNKS) // 4096 - 1) * 4096


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
    with durable_output(out, window=10, direct=False) as writer:
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
