"""Atomic outputs: whole or absent, and orphans of killed runs are swept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from s9.atomic import atomic_path, sweep_stale, write_text_atomic


def test_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, suffix=".mp4") as tmp:
        tmp.write_text("half")
        raise RuntimeError("encoder died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_success_replaces_and_is_world_readable(tmp_path: Path) -> None:
    target = tmp_path / "a" / "debug.txt"
    write_text_atomic(target, "hello")
    assert target.read_text() == "hello"
    assert target.stat().st_mode & 0o044 == 0o044


def test_orphans_of_dead_processes_are_swept_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    orphan = tmp_path / f".clip.mp4.{dead_pid}.abc123.tmp.mp4"
    orphan.write_text("partial")
    live = tmp_path / f".clip.mp4.{__import__('os').getpid()}.xyz.tmp.mp4"
    live.write_text("being written")
    other = tmp_path / ".other.mp4.1.tmp.mp4"
    other.write_text("not ours")
    assert sweep_stale(target) == [orphan]
    assert live.exists() and other.exists() and not orphan.exists()
