"""Writing a large file (a restore's download) so that it is on disk when the writer says it is done, with the
disk kept busy while the bytes are still being produced.

A restore is only done once its output is durable. Writing everything to the page cache and calling fsync at
the end leaves the disk idle while the blocks are decompressed and verified, then waits for the whole file's
writeback at once: at 1 GB on this project's 2-core machine that final wait was most of the gap between a
restore and a plain copy of the same bytes. So every :data:`WINDOW` bytes the writer starts the writeback of
the window just written (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait) and waits for
the one before it, which bounds the dirty pages a restore leaves behind; the final ``fdatasync`` then waits
for the last two windows only. Where ``sync_file_range`` is missing or refused (not Linux, a filesystem
without it), only the final ``fdatasync`` remains, which is what makes the file durable in every case.

:func:`durable_output` writes ``<name>.partial`` and renames it into place after the data and then its
folder are synced, so a crash leaves the previous file, or none, never a truncated one under the final name.
May import the standard library only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

WINDOW = 8 << 20
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
    """Writes to ``fd`` (a regular file opened for writing, positioned at its start) in order."""

    def __init__(self, fd: int, window: int = WINDOW) -> None:
        self.fd = fd
        self.window = window
        self.written = 0
        self._flushed = 0  # writeback started up to here
        self._ranges = _sync_file_range

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.written += n
        while self.written - self._flushed >= self.window:
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

    def finish(self) -> None:
        """Returns once every byte written is on disk."""
        os.fdatasync(self.fd)


def fsync_folder(folder: Path) -> None:
    """Makes a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def durable_output(path: Path, *, window: int = WINDOW) -> Iterator[DurableWriter]:
    """A :class:`DurableWriter` of ``path``: in place and durable when the block exits normally; on an error
    the partial file is removed and ``path`` is untouched."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        writer = DurableWriter(fd, window)
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
