"""The restore download folder: private, deleted whatever ends its restore, a killed restore's leftover found
and deleted by the next one, and never deleted while its restore runs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from opsmgr.backup.restore_download import claimed, download_folder, leftover, private_opener, remove_leftover
from opsmgr.errors import Conflict


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_while_held_and_gone_after_even_on_an_error(tmp_path: Path) -> None:
    folder = download_folder(tmp_path)
    with pytest.raises(KeyboardInterrupt), claimed(tmp_path) as download:
        assert download.folder == folder and not download.leftover_removed
        assert mode(folder) == 0o700
        with open(folder / "app.jsonl", "w", opener=private_opener) as f:
            f.write("{}\n")
        assert mode(folder / "app.jsonl") == 0o600
        assert not leftover(folder), "held by its running restore"
        with pytest.raises(Conflict, match="still running"):
            remove_leftover(folder)
        assert (folder / "app.jsonl").exists()
        raise KeyboardInterrupt
    assert not folder.exists()


def test_a_killed_restores_download_is_found_and_deleted(tmp_path: Path) -> None:
    folder = download_folder(tmp_path)
    folder.mkdir()
    (folder / ".lock").touch()  # its holder died: the lock is free
    (folder / "app.jsonl").write_text("{}\n")
    assert leftover(folder)
    with claimed(tmp_path) as download:
        assert download.leftover_removed and not (folder / "app.jsonl").exists()
    folder.mkdir()
    assert remove_leftover(folder) and not folder.exists()
    assert not remove_leftover(folder) and not leftover(folder)
