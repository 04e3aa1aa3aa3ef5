# ruff: noqa: F401, F811 - pytest fixtures imported from tests.fakeapi (used as arguments)
"""Never paying for a prediction nobody waits for, knowing what was paid, and the two hardening cases of the
token and the journal -- on `FakeReplicate`, through the real `replicate` client and the real `s9` entry point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import replicate

from s9.backends.replicate.client import BAD_TOKEN, Session
from s9.fake.state import parse_cancel_after
from s9.journal import Journal, utc_iso
from s9.runner import run_job, run_jobs
from s9.spend import actual_cost, spend
from tests.conftest import make_concept
from tests.fakeapi import (
    CREATE,
    FAST,
    GET,
    LIST,
    OUTPUT,
    S9,
    TOKEN,
    UPLOAD,
    _serve,
    backend,
    check_clip,
    hits,
    jobs_for,
    s9,
    scenes,
    server,
    settings,
    wait_for,
    write_params,
)

# -- Cancel-After: the server ends what nobody waits for -------------------------------------------


def test_every_create_carries_cancel_after_and_the_deadline_is_journaled(server, workdir: Path) -> None:
    server.config.rate_limit_creates = 1
    server.config.retry_after = 0.0
    server.config.create_then_error = 1
    s = settings(prediction_timeout_seconds=120)
    jobs = jobs_for(workdir, s, scenes=scenes(3))
    b = backend(s)
    assert run_jobs(jobs, b, workers=1).ok
    creates = [r for r in server.requests() if f"{r['method']} {r['route']}" == CREATE]
    assert [r["status"] for r in creates] == [429, 502, 201, 201]  # a retry, an adopted create, two more
    for request in creates:  # every create, retries included, with what is left of the timeout
        assert 0 < parse_cancel_after(request["cancel_after"]) <= 120
    assert creates[0]["cancel_after"] == "120s"
    records = server.predictions()
    assert len(records) == 3 and all(r["deadline"] for r in records)
    entries = {e.prediction_id: e for e in Journal().entries().values()}
    assert {pid: e.deadline for pid, e in entries.items()} == {r["id"]: r["deadline"] for r in records}


def test_a_prediction_left_behind_by_a_killed_run_is_ended_by_the_server(server, workdir: Path) -> None:
    server.config.latency = 30.0  # it would start after 15 s: the 2 s deadline comes first
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    write_params(workdir, prediction_timeout_seconds=2)
    args = ["clip", str(prompts), "1", str(frames / "tiny_p1_first_frame.jpg")]
    proc = subprocess.Popen([*S9, *args], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=os.environ.copy())
    try:
        wait_for(lambda: len(server.predictions()) == 1, what="a create held open")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    [entry] = Journal().entries().values()
    assert entry.state == "submitting" and entry.prediction_id is None and entry.deadline
    # Nobody waits for it any more; the server ends it at its deadline, before it started: not charged.
    wait_for(lambda: server.predictions()[0]["status"] == "aborted", timeout=10, what="the server's deadline")
    # The next run finds it by listing, sees it ended, and pays for one new prediction only.
    server.config.latency = 0.2
    write_params(workdir, prediction_timeout_seconds=60)
    code, out, err = s9(*args, cwd=workdir)
    assert code == 0, err
    assert sorted(p["status"] for p in server.predictions()) == ["aborted", "succeeded"]
    assert spend().total.predictions == 1


# -- recovery from the submit time (created_after) -------------------------------------------------


def write_unconfirmed(job, sent: dict, submitted: float) -> None:  # noqa: ANN001 - a Job
    """A journal entry as a run leaves it when it dies after journaling a create, before any answer."""
    path = Journal().path(job.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "fingerprint": job.fingerprint, "prediction_id": None, "model": job.model.id, "state": "submitting",
        "created_at": submitted, "updated_at": submitted, "label": job.label, "input": sent,
        "submitted_at": utc_iso(submitted),
    }))


def test_recovery_lists_only_predictions_created_since_the_submit(server, workdir: Path) -> None:
    server.config.list_page_size = 1  # paging through history would take one request per prediction
    s = settings()
    [job] = jobs_for(workdir, s, scenes=scenes(1))
    client = replicate.Client(api_token=TOKEN, base_url=server.base_url)
    sent = job.api_input(f"{server.base_url}/v1/files/uploaded-by-the-dead-run")
    old = client.models.predictions.create(model=job.model.id, input=sent)  # same input, but made long before
    for i in range(3):
        client.predictions.cancel(client.models.predictions.create(
            model=job.model.id, input={**sent, "prompt": f"history {i}"}).id)
    submitted = time.time() + 600  # the dead run's submit, after all of those (as if they were days old)
    write_unconfirmed(job, sent, submitted)
    b = backend(s)
    run_job(job, b)
    check_clip(job)
    [listing] = [r for r in server.requests() if f"{r['method']} {r['route']}" == LIST]
    cutoff = datetime.fromtimestamp(submitted - b.policy.list_skew, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert f"created_after={cutoff}" in listing["path"].replace("%3A", ":")
    assert (b.stats["lists"], b.stats["adopted"], b.stats["creates"]) == (1, 0, 1)  # one page, nothing old adopted
    assert Journal().get(job.fingerprint).prediction_id not in (old.id, None)


# -- the budget holds during the run ---------------------------------------------------------------


def test_the_run_stops_creating_before_the_budget_is_crossed(server, workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(3))
    write_params(workdir, max_spend_usd=1.0)  # one 4 s clip is $0.60
    code, out, err = s9("generate", prompts, "--frames", frames, "--workers", "3", cwd=workdir)
    assert code == 1
    assert hits(server, CREATE) == 1 and len(server.predictions()) == 1
    assert "Success rate: 1/3 (33%)" in out
    failed = [line for line in err.splitlines() if line.startswith("[tiny] ✗")]
    assert len(failed) == 2 and all("budget.max_spend_usd $1.00" in line and "not created" in line for line in failed)
    assert any("$0.60 more would take this run to $1.20" in line for line in failed)
    assert spend().total.cost_usd == pytest.approx(0.60)


def test_a_retry_after_an_expired_output_counts_against_the_budget(server, workdir: Path) -> None:
    server.config.expire_outputs = 1  # the first clip's output is gone when downloaded: paid for again
    s = settings(max_spend_usd=1.20)
    jobs = jobs_for(workdir, s, scenes=scenes(2))
    summary = run_jobs(jobs, backend(s), workers=1)
    assert [r.ok for r in summary.results] == [True, False]
    assert "not created" in summary.results[1].error and hits(server, OUTPUT, 410) == 1
    assert hits(server, CREATE) == 2  # scene 1 twice; scene 2 would have crossed $1.20
    assert actual_cost(jobs[0].fingerprint) == pytest.approx(1.20)  # both of scene 1's predictions were billed
    assert actual_cost([job.fingerprint for job in jobs], workdir) == pytest.approx(1.20)


def test_a_success_older_than_an_hour_is_reported_expired_before_paying_again(server, workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    args = ["clip", prompts, 1, frames / "tiny_p1_first_frame.jpg"]
    write_params(workdir, max_spend_usd=1.0)
    assert s9(*args, cwd=workdir)[0] == 0
    [(fp, entry)] = Journal().entries().items()
    (workdir / "outputs/b1/tiny/tiny_p1_veo_3.1_fast.mp4").unlink()
    two_hours_ago = time.time() - 7200
    data = json.loads(Journal().path(fp).read_text())
    data.update(updated_at=two_hours_ago, billed={**data["billed"], "completed_at": utc_iso(two_hours_ago)})
    Journal().path(fp).write_text(json.dumps(data))
    server.reset()
    # The replacement counts against the budget: with $0.50 left it is not made.
    write_params(workdir, max_spend_usd=0.5)
    code, out, err = s9(*args, cwd=workdir)
    notice = (f"⚠ tiny scene 1: prediction {entry.prediction_id} succeeded 2.0 h ago and its output has expired (the "
              "API deletes outputs after 1 h); creating a new one ($0.60, counted against the budget)")
    assert code == 1 and notice in err.splitlines()
    assert "not created: $0.60 more would take this run to $0.60, over budget.max_spend_usd $0.50" in err
    assert hits(server, CREATE) == 0 and hits(server, GET) == 0  # the old one was not even asked about
    write_params(workdir, max_spend_usd=1.0)
    code, out, err = s9(*args, cwd=workdir)
    assert code == 0, err
    assert hits(server, CREATE) == 1 and len(server.predictions()) == 2
    assert actual_cost(fp) == pytest.approx(1.20)


# -- what was spent --------------------------------------------------------------------------------


def test_s9_spend_sums_per_model_concept_and_day(server, workdir: Path) -> None:
    s = settings()
    b = backend(s)
    tiny = jobs_for(workdir, s, scenes=scenes(2))
    other = jobs_for(workdir, settings(video_model="google/veo-3-fast"), name="other", scenes=scenes(1))
    assert run_jobs(tiny + other, b, workers=3).ok
    code, out, err = s9("spend", cwd=workdir)
    assert code == 0, err
    today = datetime.now(UTC).date().isoformat()
    assert out.splitlines()[0] == "Spent $1.80 on 3 prediction(s), 12 s of video"
    assert "  google/veo-3.1-fast" in out and "  other  " in out and f"  {today}" in out
    code, out, err = s9("spend", "--json", cwd=workdir)
    data = json.loads(out)
    assert data["total"] == {"predictions": 3, "output_seconds": 12.0, "cost_usd": 1.8}
    assert data["by_model"]["google/veo-3-fast"] == {"predictions": 1, "output_seconds": 4.0, "cost_usd": 0.6}
    assert data["by_concept"]["tiny"]["predictions"] == 2 and list(data["by_day"]) == [today]
    records = {p["id"]: p for p in server.predictions()}
    assert {c["prediction_id"] for c in data["predictions"]} == set(records)
    assert all(c["predict_time"] is not None for c in data["predictions"])
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    code, out, err = s9("spend", "--since", tomorrow, cwd=workdir)
    assert out.startswith(f"Spent $0.00 on 0 prediction(s), 0 s of video since {tomorrow}")
    assert actual_cost([job.fingerprint for job in tiny]) == pytest.approx(1.20)
    assert actual_cost(other[0].fingerprint, workdir) == pytest.approx(0.60) and actual_cost([], workdir) == 0
    assert s9("spend", "--since", "yesterday", cwd=workdir)[0] == 2


# -- issue 9, item 9: a malformed token ------------------------------------------------------------


@pytest.mark.parametrize("token", ["r8_firsthalfAAAA\nsecondhalfBBBB", "r8_t\u00f6k\u00e9nCCCCsecret", "r8_a b_DDDD"])
def test_a_malformed_token_is_refused_before_any_request(server, workdir: Path, token: str) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    write_params(workdir)
    code, out, err = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=workdir,
                        env={"REPLICATE_API_TOKEN": token})
    assert code == 2
    assert err == f"error: {BAD_TOKEN}\n"
    for part in ("AAAA", "BBBB", "CCCC", "DDDD", "secret", "k\u00e9n"):
        assert part not in out + err
    assert server.stats()["total"] == 0 and not (workdir / "outputs").exists()


def test_the_token_is_scrubbed_in_every_form() -> None:
    token = "r8_first\nsecond\u00e9half"
    session = Session(token, None, FAST)
    for text in (token, repr(token), json.dumps(token), f"b'Bearer {token.encode('unicode_escape').decode()}'"):
        scrubbed = session.scrub(f"header value {text} rejected")
        assert "first" not in scrubbed and "second" not in scrubbed, scrubbed


# -- issue 9, item 10: an unreadable journal entry -------------------------------------------------


def test_an_unreadable_journal_entry_is_recovered_by_listing(server, workdir: Path) -> None:
    s = settings()
    [job] = jobs_for(workdir, s, scenes=scenes(1))
    run_job(job, backend(s))
    [record] = server.predictions()
    job.output.unlink()
    Journal().path(job.fingerprint).write_text('{"prediction_id": "' + record["id"][:5])  # cut short
    b = backend(s)
    run_job(job, b)
    check_clip(job)
    assert hits(server, CREATE) == 1  # not paid for again
    assert (b.stats["corrupt_entries"], b.stats["adopted"], b.stats["creates"]) == (1, 1, 0)
    entry = Journal().get(job.fingerprint)
    assert (entry.prediction_id, entry.state) == (record["id"], "succeeded")


def test_an_unreadable_entry_with_nothing_to_find_refuses_the_scene(workdir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(2))
    write_params(workdir)
    for _srv in _serve(monkeypatch):
        assert s9("generate", prompts, "--frames", frames, cwd=workdir)[0] == 0
    fps = {e.label: fp for fp, e in Journal().entries().items()}
    bad = Journal().path(fps["tiny scene 1"])
    bad.write_bytes(b"\x00\xff not json")
    for clip in (workdir / "outputs/b1/tiny").glob("*.mp4"):
        clip.unlink()
    # Another account's API (or one past retention): the listing cannot find what the entry recorded.
    for srv in _serve(monkeypatch):
        code, out, err = s9("generate", prompts, "--frames", frames, cwd=workdir)
        assert code == 1
        assert (f"✗ Scene 1 failed: journal entry {bad} is unreadable and no prediction for this scene was found by "
                f"listing; delete {bad} for a fresh take") in err
        assert "Success rate: 1/2 (50%)" in out  # the other scene is unaffected
        assert hits(srv, CREATE) == 1 and hits(srv, LIST) >= 1
        bad.unlink()  # as the line says
        code, out, err = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=workdir)
        assert code == 0, err
        assert hits(srv, CREATE) == 2
