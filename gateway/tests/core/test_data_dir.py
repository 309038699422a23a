"""The data directory the gateway makes stays out of the user's version control."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runinfra_gateway.data_dir import make_data_dir


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout


def test_a_data_dir_made_inside_a_checkout_is_not_committed(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    data_dir = tmp_path / "runinfra-data"
    make_data_dir(data_dir)
    (data_dir / "webhook-master.key").write_bytes(b"k" * 32)
    (data_dir / "runinfra.sqlite3").write_bytes(b"SQLite format 3\x00")
    assert _git(tmp_path, "status", "--porcelain", "--untracked-files=all") == ""
    _git(tmp_path, "add", "--all")
    assert _git(tmp_path, "diff", "--cached", "--name-only") == ""


def test_a_data_dir_that_exists_is_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    make_data_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_parents_are_made_too(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    make_data_dir(data_dir)
    assert data_dir.is_dir()
    assert (data_dir / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"
