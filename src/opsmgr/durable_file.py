"""Writing a large file (a restore's download) so that it is on disk when the writer says it is done, with the
disk kept busy while the bytes are still being produced.

A restore is only done once its output is durable. Writing everything to the page cache and calling fsync at
the end leaves the disk idle while the blocks are decompressed and verified, then waits for the whole file's
writeback at once. So the output is opened with ``O_DIRECT`` where the filesystem takes it: the bytes are
gathered in an aligned buffer of :data:`WINDOW` bytes and each full buffer goes straight to the disk,
the writing thread waiting for the device (without the GIL) while the restore's other threads decompress and
verify the next blocks; the last, partial buffer is written padded to :data:`DIRECT_ALIGN` and the file cut
back to its length. Measured at 1 GB on this project's 2-core machine (a virtual machine): writing through
the page cache cost the writing thread 0.3 to 2.5 CPU-seconds (copying into page-cache pages and allocating
them, which the host makes expensive at times), CPU the decompression needed; ``O_DIRECT`` costs 0.05-0.1.

Where ``O_DIRECT`` is refused (a filesystem without it, at open or at a write), the bytes from there on
go through the page cache as before: every :data:`WINDOW` bytes the writer starts the writeback of the
window just written (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait) and waits for
the one before it, which bounds the dirty pages a restore leaves behind. In every case the final
``fdatasync`` is what makes the file durable (with ``O_DIRECT`` it flushes the device's cache and the
file's metadata).

:func:`durable_output` writes ``<name>.partial`` and renames it into place after the data and then its
folder are synced, so a crash leaves the previous file, or none, never a truncated one under the final name.
May import the standard library only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import mmap
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

WINDOW = 8 << 20
DIRECT_ALIGN = 4096  # a multiple of every logical block size Linux asks O_DIRECT writes to align to
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4

_SyncRange = Callable[[int, int, int, int], int]


def _load_sync_file_range() -> _SyncRange | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()


class DurableWriter:
    """Writes to ``fd`` (a regular file opened for writing, positioned at its start) in order; ``direct``
    when ``fd`` was opened with ``O_DIRECT`` (then ``window`` is the size of each write, rounded down to a
    multiple of :data:`DIRECT_ALIGN`)."""

    def __init__(self, fd: int, window: int = WINDOW, *, direct: bool = False) -> None:
        self.fd = fd
        self.window = window
        self.written = 0  # bytes handed in
        self._in_file = 0  # bytes written to the file through the page cache or directly
        self._flushed = 0  # writeback started up to here
        self._ranges = _sync_file_range
        self._direct = direct
        # Anonymous memory is page-aligned, as O_DIRECT needs; allocated once, reused for every write.
        chunk = max(DIRECT_ALIGN, window // DIRECT_ALIGN * DIRECT_ALIGN)
        self._stage = mmap.mmap(-1, chunk) if direct else None
        self._staged = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.written += len(view)
        if self._direct:
            self._gather(view)
        else:
            self._write_cached(view)

    def _write_cached(self, view: memoryview) -> None:
        """Through the page cache, the writeback of each full window started."""
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self._in_file += n
        while self._in_file - self._flushed >= self.window:
            self._start_writeback(self._flushed, self.window)

    def _start_writeback(self, offset: int, length: int) -> None:
        self._flushed = offset + length
        if self._ranges is None:
            return
        if self._ranges(self.fd, offset, length, _WRITE) != 0:
            self._ranges = None  # refused here: the final fdatasync does it all
            return
        before = offset - self.window
        if before >= 0 and self._ranges(self.fd, before, self.window, _WAIT_BEFORE | _WRITE | _WAIT_AFTER):
            self._ranges = None

    def _gather(self, view: memoryview) -> None:
        assert self._stage is not None
        while view:
            n = min(len(view), len(self._stage) - self._staged)
            self._stage[self._staged : self._staged + n] = view[:n]
            self._staged += n
            view = view[n:]
            if self._staged == len(self._stage):
                self._write_direct(len(self._stage))
                if not self._direct:  # refused: the rest through the page cache
                    self._write_cached(view)
                    return

    def _write_direct(self, length: int) -> None:
        assert self._stage is not None
        out = memoryview(self._stage)[:length]
        self._staged = 0
        while out:
            try:
                n = os.write(self.fd, out)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # Refused (alignment this filesystem does not take, or a short write left out unaligned): from
                # here on the bytes go through the page cache, which the final fdatasync makes durable.
                fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~_O_DIRECT)
                self._direct = False
                self._write_cached(out)
                return
            out = out[n:]
            self._in_file += n

    def finish(self) -> None:
        """Returns once every byte written is on disk."""
        if self._staged:  # only ever left by direct writes: the last one padded, the file cut back after
            assert self._stage is not None
            padded = -(-self._staged // DIRECT_ALIGN) * DIRECT_ALIGN
            self._stage[self._staged : padded] = bytes(padded - self._staged)
            self._write_direct(padded)
            os.ftruncate(self.fd, self.written)
        os.fdatasync(self.fd)


def fsync_folder(folder: Path) -> None:
    """Makes a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_output(partial: Path, direct: bool) -> tuple[int, bool]:
    """The file opened for writing, with ``O_DIRECT`` if asked and the filesystem takes it (and whether it
    did)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if direct and _O_DIRECT:
        try:
            return os.open(partial, flags | _O_DIRECT, 0o600), True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    return os.open(partial, flags, 0o600), False


@contextmanager
def durable_output(path: Path, *, window: int = WINDOW, direct: bool = True) -> Iterator[DurableWriter]:
    """A :class:`DurableWriter` of ``path``: in place and durable when the block exits normally; on an error
    the partial file is removed and ``path`` is untouched. ``direct=False``: through the page cache even
    where ``O_DIRECT`` is available."""
    partial = path.with_name(path.name + ".partial")
    fd, direct = _open_output(partial, direct)
    try:
        writer = DurableWriter(fd, window, direct=direct)
        yield writer
        writer.finish()
    except BaseException:
        os.close(fd)
        with suppress(FileNotFoundError):
            partial.unlink()
        raise
    os.close(fd)
    partial.replace(path)
    fsync_folder(path.parent)
