"""The prediction journal on its own: atomic entries, per-fingerprint locks across threads and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from s9.journal import Journal, JournalEntry, parse_utc, utc_iso

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
from s9.journal import Journal, JournalEntry, parse_utc, utc_iso
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


def test_submitting_entry_until_the_create_answers(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    sent = {"prompt": "a lighthouse", "image": "https://api.example/v1/files/abc", "duration": 4}
    now = time.time()
    first = j.record(FP, JournalEntry.submitting("google/veo-3.1-fast", sent, now, label="tiny scene 1"))
    got = j.get(FP)
    assert got == first and got.input == sent and got.prediction_id is None
    assert (got.state, got.unconfirmed, got.resumable) == ("submitting", True, False)
    assert got.submitted_at.endswith("Z") and abs(got.submitted_epoch - now) < 1e-5
    assert json.loads(j.path(FP).read_text())["prediction_id"] is None
    # The create answered: id and state recorded; input and submit time stay for reference.
    answered = j.update(FP, prediction_id="p9", state="starting")
    assert (answered.unconfirmed, answered.resumable, answered.input) == (False, True, sent)
    assert answered.submitted_at == first.submitted_at


def test_rejected_create_is_dead_and_old_entries_still_load(tmp_path: Path) -> None:
    rejected = replace(JournalEntry.submitting("m", {"prompt": "x"}), state="rejected")
    assert not rejected.resumable and not rejected.unconfirmed
    # An entry written before `input`/`submitted_at` existed reads fine; its submit time is created_at.
    j = Journal(tmp_path)
    j.path(FP).parent.mkdir(parents=True, exist_ok=True)
    j.path(FP).write_text(json.dumps({"fingerprint": FP, "prediction_id": "p1", "model": "m", "state": "processing",
                                      "created_at": 1700000000.5, "updated_at": 1700000001.0}))
    old = j.get(FP)
    assert old.resumable and old.input is None and old.submitted_epoch == 1700000000.5


def test_parse_utc() -> None:
    assert parse_utc("2024-01-02T03:04:05.123456Z") == pytest.approx(1704164645.123456)
    assert parse_utc("2024-01-02T03:04:05.123456789Z") == pytest.approx(1704164645.123456)  # 9 digits
    assert parse_utc("2024-01-02T03:04:05+00:00") == parse_utc("2024-01-02T03:04:05") == 1704164645.0
    assert parse_utc("2024-01-02T05:04:05+02:00") == 1704164645.0
    assert parse_utc(utc_iso(1704164645.25)) == 1704164645.25
    for bad in (None, "", "yesterday", "2024-13-45T00:00:00Z"):
        assert parse_utc(bad) is None


def test_default_journal_is_the_projects_one_and_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Running from a subfolder must find the same journal, or a re-run would pay twice."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "sub" / "deeper")
    journal = Journal()
    assert journal.root == (tmp_path / ".s9" / "journal").resolve()
    assert not (tmp_path / ".s9").exists()  # nothing is written before the first prediction
    with journal.lock("ab" * 32):
        pass
    assert (tmp_path / ".s9" / ".gitignore").read_text() == "*\n"
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "sub" / ".git").mkdir()  # a DVC root wins over a nearer git root
    assert Journal().root == (tmp_path / ".s9" / "journal").resolve()
