"""Pacing to the account's rate limits: hundreds of scenes in flight, no avoidable 429, none failed for them.

The pacer itself is checked on its own (spacing, bursts, pauses, Ctrl-C); the backend with the real
`replicate` client against the fake server with its create limit on (`create_limit_per_minute`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from s9.backends.replicate import Policy
from s9.backends.replicate.pacing import Pacer
from s9.fake import FakeReplicate
from s9.journal import Journal
from s9.runner import run_jobs
from tests.fakeapi import (
    ACCOUNT,
    CREATE,
    FAST,
    OUTPUT,
    SCHEMA,
    UPLOAD,
    backend,
    hits,
    jobs_for,
    scenes,
    server,
    settings,
)

__all__ = ["server"]  # the fixture, imported for the tests below


def _sends(pacer: Pacer, threads: int, each: int) -> list[float]:
    """Monotonic times at which `threads` threads were let through, `each` times each."""
    times: list[float] = []
    guard = threading.Lock()

    def go() -> None:
        for _ in range(each):
            assert pacer.acquire()
            with guard:
                times.append(time.monotonic())

    workers = [threading.Thread(target=go) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(times)


def _most_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


# The times below are when threads saw their turn, which a busy machine can only make later than the pacer's slot:
# each bound leaves a good part of an interval for that, and the intervals are long enough (50-200 ms) to allow it.


def test_pacer_lets_a_burst_through_then_keeps_the_rate() -> None:
    pacer = Pacer(per_minute=1200, burst=5)  # 20 a second
    times = _sends(pacer, threads=4, each=5)
    assert len(times) == 20
    # Never more than the burst plus what the rate allows in any window (one more for a late thread).
    assert _most_in_window(times, 0.2) <= 5 + 4 + 1
    assert times[-1] - times[0] >= (20 - 5) * 0.05 * 0.8  # the other 15 were spaced, not sent at once


def test_a_pause_holds_every_waiting_thread_and_starts_without_a_burst() -> None:
    pacer = Pacer(per_minute=600, burst=5)
    assert pacer.acquire()
    paused_at = time.monotonic()
    pacer.pause(0.3)
    times = _sends(pacer, threads=5, each=1)
    assert min(times) - paused_at >= 0.3  # nobody went before the Retry-After
    assert pacer.per_minute == pytest.approx(300)  # the rate was halved...
    assert times[-1] - times[0] >= 4 * 0.2 * 0.75  # ...and no burst right after the pause: one each 0.2 s
    pacer.pause(0.2)  # a 429 of a request already in flight in the same episode does not halve it again
    pacer.pause(0.1)
    assert pacer.per_minute == pytest.approx(150)
    for _ in range(200):
        pacer.succeeded()
    assert pacer.per_minute == pytest.approx(600)  # successes bring it back to the configured rate


def test_acquire_gives_up_on_ctrl_c_and_on_a_timeout() -> None:
    pacer = Pacer(per_minute=60, burst=1)
    assert pacer.acquire()
    assert not pacer.acquire(timeout=0.2)  # the next slot is a second away
    canceled = threading.Event()
    threading.Timer(0.1, canceled.set).start()
    assert not pacer.acquire(canceled)


def test_a_caller_that_gives_up_leaves_its_slot_to_the_next() -> None:
    now = [100.0]
    pacer = Pacer(per_minute=60, burst=1, clock=lambda: now[0])  # a slot a second
    assert pacer.acquire()
    for _ in range(3):
        assert not pacer.acquire(timeout=0.5)  # the next slot is a second away: each gives up, holding none
    now[0] += 1.0
    assert pacer.acquire(timeout=0)  # the slot at 101 s is still free


def _overlap(server: FakeReplicate) -> int:
    """The most predictions that were running at the same moment, from the server's own records."""
    spans = [(datetime.fromisoformat(p["created_at"]), datetime.fromisoformat(p["completed_at"]))
             for p in server.predictions()]
    return max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)


@pytest.mark.slow
def test_hundreds_of_scenes_in_flight_each_one_held_request(server: FakeReplicate, workdir: Path) -> None:
    """250 workers: 250 creates held open by Prefer: wait at once (more than httpx's default pool of 100),
    every clip for an upload, one create and a download, nothing retried."""
    server.config.shared_renders = True
    server.config.latency = 3.0
    s = settings()
    jobs = jobs_for(workdir, s, scenes=scenes(250))
    b = backend(s, replace(FAST, creates_per_minute=60_000, create_burst=250, request_burst=1000,
                           requests_per_minute=600_000))
    summary = run_jobs(jobs, b, workers=250)
    assert summary.ok, [r.error for r in summary.failed][:3]
    assert _overlap(server) > 200
    distinct = len({job.frame_sha256 for job in jobs})  # scenes with the same frame share one upload
    assert hits(server, CREATE) == hits(server, OUTPUT) == 250 and hits(server, UPLOAD) == distinct
    # Besides: one token check and one schema fetch for the run; no polls, no retries.
    assert hits(server, ACCOUNT) == hits(server, SCHEMA) == 1 and server.stats()["total"] == 2 * 250 + distinct + 2
    assert not b.stats["create_retries"] and not b.stats["rate_limited"]


@pytest.mark.slow
def test_a_batch_paced_to_the_create_limit_gets_no_429(server: FakeReplicate, workdir: Path) -> None:
    """The server enforces 600 creates a minute (burst 10); the client paces to the same documented limit with a
    smaller burst, so 40 scenes at once meet no 429 at all."""
    server.config.shared_renders = True
    server.config.create_limit_per_minute = 600
    server.config.create_burst = 10
    s = settings()
    jobs = jobs_for(workdir, s, scenes=scenes(40))
    b = backend(s, replace(FAST, creates_per_minute=Policy().creates_per_minute))
    summary = run_jobs(jobs, b, workers=40)
    assert summary.ok, [r.error for r in summary.failed][:3]
    assert server.stats()["throttled"] == 0 and not b.stats["throttled"] and hits(server, CREATE, 429) == 0
    assert len(server.predictions()) == 40


@pytest.mark.slow
def test_an_account_throttled_harder_slows_down_and_fails_nothing(server: FakeReplicate, workdir: Path) -> None:
    """The account allows 2 creates a second (burst 1) while the client expects 10: the 429s that follow are
    obeyed (Retry-After, for every thread at once), retried without counting as failures, and nothing is paid
    twice."""
    server.config.shared_renders = True
    server.config.create_limit_per_minute = 120
    server.config.create_burst = 1
    s = settings()
    jobs = jobs_for(workdir, s, scenes=scenes(8))
    b = backend(s, replace(FAST, attempts=2))  # 429s must not use up the two tries other failures get
    summary = run_jobs(jobs, b, workers=8)
    assert summary.ok, [r.error for r in summary.failed][:3]
    throttled = server.stats()["throttled"]
    assert throttled >= 1 and b.stats["throttled"] == throttled == hits(server, CREATE, 429)
    assert len(server.predictions()) == 8 and hits(server, CREATE, 201) == 8
    entries = Journal().entries().values()
    assert sorted(e.state for e in entries) == ["succeeded"] * 8
