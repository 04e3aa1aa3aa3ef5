"""The prediction journal on its own: atomic entries, per-fingerprint locks across threads and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from s9.journal import Journal, JournalEntry

FP = "ab" * 32
OTHER = "cd" * 32


def entry(pid: str = "p1", state: str = "starting") -> JournalEntry:
    now = time.time()
    return JournalEntry(pid, "google/veo-3.1-fast", state, now, now, label="tiny scene 1")


def test_record_get_update_roundtrip(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    assert j.get(FP) is None and j.entries() == {}
    first = j.record(FP, entry())
    assert j.get(FP) == first
    data = json.loads(j.path(FP).read_text())
    assert data["fingerprint"] == FP and data["prediction_id"] == "p1" and data["state"] == "starting"
    before = j.get(FP).updated_at
    updated = j.update(FP, state="succeeded", output_url="https://x/y.mp4")
    assert updated is not None and updated.state == "succeeded" and updated.updated_at >= before
    assert j.get(FP).output_url == "https://x/y.mp4" and j.get(FP).resumable
    assert j.update(OTHER, state="failed") is None  # nothing to update
    assert list(j.entries()) == [FP]
    assert not [p for p in j.root.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_dead_states_are_not_resumable(tmp_path: Path) -> None:
    for state in ("failed", "canceled", "expired"):
        assert not entry(state=state).resumable
    for state in ("starting", "processing", "succeeded"):
        assert entry(state=state).resumable


def test_unreadable_entry_is_treated_as_absent(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.path(FP).write_text("{not json")
    assert j.get(FP) is None and j.entries() == {}


def test_fingerprint_must_be_a_hex_digest(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    for bad in ("../../etc/passwd", "", "XYZ" * 10, FP + "/x"):
        with pytest.raises(ValueError):
            j.path(bad)


def test_lock_is_reentrant_and_excludes_other_threads(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    created: list[int] = []

    def look_up_or_create(n: int) -> None:
        # A separate Journal per thread: separate file descriptors, so flock itself is what excludes.
        mine = Journal(tmp_path) if n % 2 else j
        with mine.lock(FP):
            if mine.get(FP) is None:
                time.sleep(0.05)  # widen the race window
                mine.record(FP, entry(f"p{n}"))
                created.append(n)
            mine.update(FP, state="processing")  # re-enters the lock

    threads = [threading.Thread(target=look_up_or_create, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1
    assert j.get(FP).prediction_id == f"p{created[0]}" and j.get(FP).state == "processing"


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    code = f"""
import sys, time
from s9.journal import Journal, JournalEntry
j = Journal(sys.argv[1])
with j.lock({FP!r}):
    if j.get({FP!r}) is None:
        time.sleep(0.2)
        j.record({FP!r}, JournalEntry(sys.argv[2], "m", "starting", time.time(), time.time()))
        print("created")
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"p{n}"], stdout=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    outputs = [p.communicate(timeout=30)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert sum(o.count("created") for o in outputs) == 1
    assert Journal(tmp_path).get(FP).prediction_id in {f"p{n}" for n in range(4)}
