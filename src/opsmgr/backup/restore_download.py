"""The folder a restore of the backing databases downloads into (the backing agent's on the primary's host,
``agent.backing_restorer``, or ``opsmgr drill``'s beside its sandbox).

A download holds whole stores, agent-key hashes included, so a killed restore must not leave it in a temporary
folder nobody looks at. It lives in one well-known place beside the primary's configuration,
``<conf dir>/restore-download`` (0700, its files 0600), locked (``flock`` on a file inside) while its restore
runs and deleted on every exit path of that restore. What a SIGKILL leaves behind is found and deleted by the
next restore and by ``opsmgr fence remove``, and named by ``opsmgr fence show``; the restore records the
folder in its fences, so a server refusing to start on them names it too. A folder whose restore is still
running is never deleted.

May import the standard library and ``opsmgr.errors`` only.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opsmgr.errors import Conflict

FOLDER = "restore-download"
LOCK = ".lock"


def download_folder(conf_dir: Path) -> Path:
    return conf_dir / FOLDER


def private_opener(path: str, flags: int) -> int:
    """``open(..., opener=private_opener)``: a new file readable by its owner only from its first byte."""
    return os.open(path, flags | os.O_EXCL, 0o600)


@contextmanager
def _unlocked(folder: Path) -> Iterator[bool]:
    """Yields whether nobody holds ``folder``'s lock (keeping it held for the block); True with no lock."""
    try:
        handle: IO[bytes] = open(folder / LOCK, "rb")  # noqa: SIM115 - held for the whole block
    except FileNotFoundError:
        yield True  # killed before its lock existed
        return
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        handle.close()


def leftover(folder: Path) -> bool:
    """Whether ``folder`` is a download that no running restore holds (a killed restore's)."""
    if not folder.is_dir():
        return False
    with _unlocked(folder) as free:
        return free


def remove_leftover(folder: Path) -> bool:
    """Deletes a killed restore's download; :class:`Conflict` while a running restore holds it."""
    if not folder.exists():
        return False
    with _unlocked(folder) as free:
        if not free:
            raise Conflict(
                f"{folder} is the download of a restore that is still running; let it end first",
                error_code="RESTORE_RUNNING",
            )
        shutil.rmtree(folder)
    return True


@dataclass(frozen=True)
class Claimed:
    folder: Path
    leftover_removed: bool  # a killed restore's download was found there and deleted


@contextmanager
def claimed(conf_dir: Path) -> Iterator[Claimed]:
    """The download folder, new, locked and private for the block, then deleted whatever ends the block."""
    folder = download_folder(conf_dir)
    removed = remove_leftover(folder)
    folder.mkdir(mode=0o700)
    try:
        with open(folder / LOCK, "wb", opener=private_opener) as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield Claimed(folder, removed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
