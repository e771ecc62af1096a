"""Published payout files get the mode a plain `open()` would give them under the process umask (0666 less the
umask), folders the mode `mkdir` gives them, and no temporary file is left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from payout_exports.store import LocalStore


@pytest.fixture
def umask():
    """Set the process umask for the test; restored afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "mask,file_mode,dir_mode",
    [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)],
    ids=["umask-022", "umask-027"],
)
def test_published_files_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    store = LocalStore(tmp_path / "exports")
    assert store.create("period=2025-01/payouts.csv", b"period,partner_id\n")
    assert store.create("period=2025-01/manifest.json", b"{}")

    folder = tmp_path / "exports" / "period=2025-01"
    assert mode(folder / "payouts.csv") == file_mode
    assert mode(folder / "manifest.json") == file_mode
    assert mode(folder) == dir_mode
    assert mode(tmp_path / "exports") == dir_mode
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "payouts.csv"]  # no temporary files


def test_an_identical_file_is_left_alone_and_a_different_one_is_refused(tmp_path, umask):
    from payout_exports import PublishConflict

    umask(0o022)
    store = LocalStore(tmp_path)
    assert store.create("a.csv", b"x")
    os.chmod(tmp_path / "a.csv", 0o600)
    assert store.create("a.csv", b"x") is False
    assert mode(tmp_path / "a.csv") == 0o600  # never rewritten, not even its mode
    with pytest.raises(PublishConflict):
        store.create("a.csv", b"y")
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]
