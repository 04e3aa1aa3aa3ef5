# ruff: noqa: F401, F811 - pytest fixtures imported from tests.fakeapi (used as arguments)
"""The Replicate backend end to end: the real `replicate` client over real HTTP(S) against `FakeReplicate`.

Nothing of ours is mocked: jobs go through `s9.runner` (or the `s9` CLI, in process or as a subprocess),
clips are real MP4s checked with PyAV, and every claim about requests is read off the server's own log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import replicate

from s9.backends import get_backend
from s9.backends.replicate import NO_TOKEN, Policy, ReplicateBackend, resolve_credentials
from s9.errors import GenerationError, InputError
from s9.fake import E005, FakeReplicate
from s9.job import Job, build_concept_jobs
from s9.journal import Journal
from s9.runner import run_job, run_jobs
from s9.scenes import load_concept
from s9.video import probe, verify
from tests.conftest import make_concept
from tests.fakeapi import (
    ACCOUNT,
    CANCEL,
    CREATE,
    FAST,
    GET,
    LIST,
    NO_WAIT,
    OUTPUT,
    S9,
    SCHEMA,
    TOKEN,
    UPLOAD,
    _serve,
    backend,
    check_clip,
    hits,
    jobs_for,
    one_good_clip,
    run,
    scenes,
    server,
    settings,
    tls_server,
    wait_for,
)

# -- models end to end -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "aspect", "scheme"),
    [
        ("openai/sora-2", "16:9", "https"),
        ("google/veo-3-fast", "1:1", "http"),
        ("google/veo-3.1-fast", "1:1", "https"),
    ],
)
def test_each_model_end_to_end_with_exact_payload(
    model: str, aspect: str, scheme: str, request: pytest.FixtureRequest, workdir: Path
) -> None:
    srv: FakeReplicate = request.getfixturevalue("tls_server" if scheme == "https" else "server")
    s = settings(video_model=model, aspect_ratio=aspect)
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    b = backend(s)
    written = run_job(job, b)
    b.close()

    assert written == [job.debug_file, job.output]
    check_clip(job)
    [record] = srv.predictions()
    [upload] = [r for r in srv.requests() if r["route"] == "/v1/files"]
    image_url = record["input"][job.model.image_field]
    assert image_url.startswith(f"{srv.base_url}/v1/files/")
    # Exactly the payload the job describes, with the uploaded file's URL as the first frame.
    assert record["model"] == model
    assert record["input"] == job.api_input(image_url)
    # The token check and the model's schema, then held open until done: upload, create, download -- no status
    # checks, no listing. The server ends the prediction itself at the run's timeout (Cancel-After).
    assert record["prefer"] == "wait=60" and record["cancel_after"] == "1800s"
    assert hits(srv, ACCOUNT) == 1 and hits(srv, SCHEMA) == 1
    assert hits(srv, GET) == 0 and hits(srv, LIST) == 0 and srv.stats()["total"] == 5
    assert record["render"]["first_frame"] == "file"  # the fake resolved our upload, not a placeholder
    assert upload["status"] == 201
    debug = job.debug_file.read_text()
    assert f"First Frame Image URI: {image_url}" in debug
    assert json.dumps(record["input"], indent=2, ensure_ascii=False) in debug
    # https gives the client's FileOutput, http a plain str URL: both forms are saved.
    assert b.stats["downloads_fileoutput" if scheme == "https" else "downloads_url"] == 1
    entry = Journal().get(job.fingerprint)
    assert entry is not None and (entry.prediction_id, entry.state) == (record["id"], "succeeded")
    assert entry.input == record["input"] and entry.submitted_at  # what was sent, and when
    assert entry.deadline == record["deadline"]  # the server's deadline, journaled
    # What it cost: seconds of output x the model's price, and the time the API reports it ran.
    assert entry.billed["prediction_id"] == record["id"] and entry.billed["output_seconds"] == job.duration
    assert entry.billed["cost_usd"] == pytest.approx(job.duration * s.price_per_second(model))
    assert entry.billed["predict_time"] is not None
    # The schema is cached for a day: the next run does not fetch it again.
    srv.reset()
    job.output.unlink()
    again = backend(s)
    run_job(job, again)
    again.close()
    assert hits(srv, SCHEMA) == 0 and hits(srv, CREATE) == 0  # and the clip was not paid for twice


def test_upload_once_per_distinct_image(server: FakeReplicate, workdir: Path) -> None:
    s = settings()
    prompts, frames = make_concept(workdir)
    # Scenes 1 and 2 share one first frame (same bytes); scene 3 has its own.
    (frames / "tiny_p2_first_frame.jpg").write_bytes((frames / "tiny_p1_first_frame.jpg").read_bytes())
    jobs, _ = build_concept_jobs(load_concept(prompts), frames, s)
    b = backend(s)
    summary = run_jobs(jobs, b, workers=3)
    assert summary.ok, [r.error for r in summary.results]
    assert hits(server, UPLOAD) == 2
    images = {p["input"]["prompt"].split(":")[0]: p["input"]["image"] for p in server.predictions()}
    assert images["Scene 1"] == images["Scene 2"] != images["Scene 3"]


# -- faults ----------------------------------------------------------------------------------------


def test_rate_limited_create_waits_retry_after_then_succeeds(server: FakeReplicate, workdir: Path) -> None:
    server.config.rate_limit_creates = 1
    server.config.retry_after = 1.0
    job, b = one_good_clip(workdir)
    creates = [r for r in server.requests() if f"{r['method']} {r['route']}" == CREATE]
    assert [r["status"] for r in creates] == [429, 201]
    assert creates[1]["time"] - creates[0]["time"] >= 1.0  # Retry-After honoured
    assert b.stats["rate_limited"] == 1 and b.stats["creates"] == 1
    assert len(server.predictions()) == 1
    assert hits(server, LIST) == 0  # a 429 created nothing: no need to look


def test_rate_limit_that_never_ends_fails_the_scene_at_its_timeout(server: FakeReplicate, workdir: Path) -> None:
    """A 429 is never a failed try (a throttled batch slows down, it does not fail), but a throttle that
    outlasts the scene's timeout ends it: nothing was created, so nothing is left to follow."""
    server.config.rate_limit_creates = 1000
    server.config.retry_after = 0.0
    s = settings(prediction_timeout_seconds=2.0)
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    with pytest.raises(GenerationError, match=r"before a prediction was created \(throttled \d+ time"):
        run_job(job, backend(s))
    assert hits(server, CREATE, 429) > FAST.attempts  # retried past the attempts that other failures get
    assert server.predictions() == [] and not job.output.exists()
    assert "throttled" in job.error_file.read_text()
    # Certainly nothing was created: the entry is dead, so a re-run creates without listing first.
    entry = Journal().get(job.fingerprint)
    assert (entry.prediction_id, entry.state) == (None, "rejected") and not entry.resumable


def test_server_error_on_create_is_retried(server: FakeReplicate, workdir: Path) -> None:
    server.config.server_error_creates = 2
    server.config.server_error_status = 500  # the client never retries a POST, whatever the status
    job, b = one_good_clip(workdir)
    assert hits(server, CREATE, 500) == 2 and hits(server, CREATE, 201) == 1
    assert len(server.predictions()) == 1
    # A 5xx may hide a created prediction: each one is followed by a listing, which found nothing here.
    assert hits(server, LIST) == 2 and b.stats["adopted"] == 0 and b.stats["creates"] == 1


def test_server_error_on_status_check_is_survived(server: FakeReplicate, workdir: Path) -> None:
    server.config.server_error_gets = 3
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    run_job(job, backend(s, policy=NO_WAIT))  # status checks are the no-wait path's (and a long wait's)
    check_clip(job)
    assert hits(server, GET, 503) == 3
    assert len(server.predictions()) == 1


def test_flagged_scene_fails_alone_with_e005(server: FakeReplicate, workdir: Path) -> None:
    server.config.flag_word = "forbiddenword"
    prompts, frames = make_concept(workdir, scenes=scenes(3, flagged=(2,)))
    code, out, err = run("generate", prompts, "--frames", frames, "--backend", "replicate", "--aspect-ratio", "1:1")
    assert code == 1
    line = f"✗ Scene 2 failed: {E005}"
    assert line in err
    assert "Success rate: 2/3 (67%)" in out
    folder = workdir / "outputs/b1/tiny"
    assert (folder / "debug/scene_2/error.txt").read_text() == line + "\n"
    assert not (folder / "tiny_p2_veo_3.1_fast.mp4").exists()
    for n in (1, 3):
        assert probe(folder / f"tiny_p{n}_veo_3.1_fast.mp4").duration == pytest.approx(4, abs=0.1)
        assert not (folder / f"debug/scene_{n}/error.txt").exists()
    assert len(server.predictions()) == 3
    # A failed prediction is not resumed: after the prompt is fixed, a re-run pays for a new one.
    [flagged] = [p for p in server.predictions() if p["status"] == "failed"]
    entry = next(e for e in Journal().entries().values() if e.prediction_id == flagged["id"])
    assert (entry.state, entry.error) == ("failed", E005)


@pytest.mark.parametrize("mode", ["short", "abort"])
def test_truncated_download_is_fetched_again_from_the_same_prediction(
    server: FakeReplicate, workdir: Path, mode: str
) -> None:
    # "short": a clean but half-length response that only the runner's MP4 check catches, so the runner
    # calls produce() again; "abort": the connection drops mid-body and produce() retries the download.
    server.config.truncate_downloads = 1
    server.config.truncate_mode = mode
    job, b = one_good_clip(workdir)
    assert hits(server, CREATE) == 1 and len(server.predictions()) == 1
    assert hits(server, OUTPUT) == 2
    assert b.stats["creates"] == 1 and b.stats["resumed"] == (1 if mode == "short" else 0)


def test_failing_upload_fails_only_that_scene(server: FakeReplicate, workdir: Path) -> None:
    server.config.fail_uploads = FAST.attempts  # every try of the first upload
    s = settings()
    jobs = jobs_for(workdir, s)
    summary = run_jobs(jobs, backend(s), workers=1)  # one worker: scene 1 meets all the failures
    first, *rest = summary.results
    assert not first.ok and first.error.startswith("Could not upload image: ")
    assert "(HTTP 500)" in first.error
    assert all(r.ok for r in rest)
    assert jobs[0].error_file.read_text().startswith("✗ Scene 1 failed: Could not upload image")
    assert hits(server, UPLOAD, 500) == FAST.attempts and len(server.predictions()) == 2


def test_timeout_cancels_through_the_api(server: FakeReplicate, workdir: Path) -> None:
    server.config.latency = 30.0
    s = settings(prediction_timeout_seconds=1.5)
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    t0 = time.monotonic()
    with pytest.raises(GenerationError, match=r"^timed out after 1.5 s; prediction (\w+) was canceled$") as err:
        run_job(job, backend(s))
    assert time.monotonic() - t0 < 15  # the 1.5 s timeout, not the 30 s prediction
    [record] = server.predictions()
    assert record["id"] in str(err.value) and record["status"] == "canceled"
    assert record["prefer"] == "wait=1"  # never held past the timeout (whole seconds: the header takes ints)
    assert hits(server, CANCEL, 200) == 1
    assert Journal().get(job.fingerprint).state == "canceled"
    assert not job.output.exists() and not list(job.output.parent.glob(".*tmp*"))


# -- the journal: no double spend ------------------------------------------------------------------


def test_rerun_resumes_and_replaces_only_dead_predictions(server: FakeReplicate, workdir: Path) -> None:
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    run_job(job, backend(s))
    first = Journal().get(job.fingerprint)
    # Same clip again (a new process would do the same): downloaded again, not paid for again.
    run_job(job, backend(s))
    assert hits(server, CREATE) == 1 and hits(server, OUTPUT) == 2
    # Canceled (or failed/expired) predictions are not followed: a new one replaces the entry.
    Journal().update(job.fingerprint, state="canceled")
    run_job(job, backend(s))
    assert hits(server, CREATE) == 2
    assert Journal().get(job.fingerprint).prediction_id != first.prediction_id
    check_clip(job)


def test_expired_output_is_paid_for_again_only_once(server: FakeReplicate, workdir: Path) -> None:
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    run_job(job, backend(s))
    first = Journal().get(job.fingerprint).prediction_id
    job.output.unlink()
    server.config.expire_outputs = 1  # the journaled prediction's output is past its retention: 410
    run_job(job, backend(s))
    check_clip(job)
    assert hits(server, CREATE) == 2 and hits(server, OUTPUT, 410) == 1
    assert Journal().get(job.fingerprint).prediction_id != first
    run_job(job, backend(s))  # and the replacement is followed from now on
    assert hits(server, CREATE) == 2


def test_prediction_gone_from_server_is_replaced(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    for _srv in _serve(monkeypatch):
        run_job(job, backend(s))
    old = Journal().get(job.fingerprint).prediction_id
    # A different server has never heard of that id (404), like a prediction past its retention.
    for srv in _serve(monkeypatch):
        run_job(job, backend(s))
        [record] = srv.predictions()
        assert hits(srv, GET, 404) == 1
    assert Journal().get(job.fingerprint).prediction_id == record["id"] != old
    check_clip(job)


def test_same_clip_from_two_backends_at_once_is_one_prediction(server: FakeReplicate, workdir: Path) -> None:
    server.config.latency = 0.5
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    backends = [backend(s, journal=Journal()), backend(s, journal=Journal())]  # separate locks/fds: real flock
    errors: list[BaseException] = []

    def go(b: ReplicateBackend, dest: Path) -> None:
        try:
            b.produce(job, job.api_input(b.upload(job)), dest)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(b, workdir / f"copy{i}.mp4")) for i, b in enumerate(backends)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert hits(server, CREATE) == 1
    assert sorted(b.stats["resumed"] for b in backends) == [0, 1]
    for i in range(2):
        verify(workdir / f"copy{i}.mp4", duration=4, audio=True)


def test_kill_9_during_a_held_create_is_adopted_on_rerun(server: FakeReplicate, workdir: Path) -> None:
    # The create is held open by Prefer: wait, so the dying run never learns the prediction's id; the journal
    # only says "submitting" (with the exact input). The re-run must find that prediction, not pay again.
    server.config.latency = 4.0
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    args = [prompts, "1", frames / "tiny_p1_first_frame.jpg", "--backend", "replicate", "--aspect-ratio", "1:1"]
    proc = subprocess.Popen([*S9, "clip", *map(str, args)], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=os.environ.copy())

    def held() -> bool:
        entries = list(Journal().entries().values())
        return [e.state for e in entries] == ["submitting"] and len(server.predictions()) == 1

    try:
        wait_for(held, what="a create held open, journaled as submitting")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    [before] = Journal().entries().values()
    [record] = server.predictions()
    assert before.prediction_id is None and before.input == record["input"]
    assert record["status"] != "succeeded" and record["prefer"] == "wait=60"
    code, out, err = run("clip", *args)
    assert code == 0, err
    assert len(server.predictions()) == 1  # adopted through the listing, not created again
    assert hits(server, LIST) == 1
    verify(workdir / "outputs/b1/tiny/tiny_p1_veo_3.1_fast.mp4", duration=4, audio=True, width=720, height=720)
    [entry] = Journal().entries().values()
    assert (entry.prediction_id, entry.state) == (record["id"], "succeeded")


def _one_clip_after_a_502_that_created(server: FakeReplicate, workdir: Path) -> tuple[Job, ReplicateBackend, dict]:
    """The server makes the prediction but answers the create with 502; the clip must still arrive."""
    server.config.create_then_error = 1
    job, b = one_good_clip(workdir)
    [record] = server.predictions()
    return job, b, record


def test_create_that_errors_after_creating_is_adopted(server: FakeReplicate, workdir: Path) -> None:
    job, b, record = _one_clip_after_a_502_that_created(server, workdir)
    assert hits(server, CREATE) == 1 and hits(server, CREATE, 502) == 1 and hits(server, LIST) == 1
    assert (b.stats["adopted"], b.stats["creates"]) == (1, 0)
    entry = Journal().get(job.fingerprint)
    assert (entry.prediction_id, entry.state) == (record["id"], "succeeded")


def test_listing_without_inputs_falls_back_to_getting_candidates(server: FakeReplicate, workdir: Path) -> None:
    server.config.list_omits_input = True  # should a listing ever leave `input` out
    job, b, record = _one_clip_after_a_502_that_created(server, workdir)
    assert (b.stats["adopted"], b.stats["creates"], b.stats["list_gets"]) == (1, 0, 1)
    assert Journal().get(job.fingerprint).prediction_id == record["id"]


def write_unconfirmed(job: Job, sent: dict, submitted: float) -> None:
    """A journal entry as a run leaves it when it dies after journaling a create, before any answer."""
    path = Journal().path(job.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "fingerprint": job.fingerprint, "prediction_id": None, "model": job.model.id, "state": "submitting",
        "created_at": submitted, "updated_at": submitted, "label": job.label, "input": sent,
        "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(submitted)),
    }))


def test_unconfirmed_create_that_never_landed_is_made_once(server: FakeReplicate, workdir: Path) -> None:
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    sent = job.api_input(f"{server.base_url}/v1/files/uploaded-by-the-dead-run")
    write_unconfirmed(job, sent, time.time() - 30)
    # Another prediction of the same model made since then, with another input: not ours to adopt.
    other = replicate.Client(api_token=TOKEN, base_url=server.base_url).models.predictions.create(
        model=job.model.id, input={**sent, "prompt": "another scene entirely"})
    b = backend(s)
    run_job(job, b)
    check_clip(job)
    assert hits(server, LIST) == 1 and hits(server, CREATE) == 2  # the listing found nothing -> one create
    assert (b.stats["recoveries"], b.stats["adopted"], b.stats["creates"]) == (1, 0, 1)
    [mine] = [p for p in server.predictions() if p["id"] != other.id]
    entry = Journal().get(job.fingerprint)
    assert (entry.prediction_id, entry.state) == (mine["id"], "succeeded")
    assert mine["input"] == entry.input != sent  # this run's own upload URL


def test_recovery_follows_pages_back_to_the_submit_time(server: FakeReplicate, workdir: Path) -> None:
    server.config.list_page_size = 2
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    client = replicate.Client(api_token=TOKEN, base_url=server.base_url)
    sent = job.api_input(f"{server.base_url}/v1/files/uploaded-by-the-dead-run")
    write_unconfirmed(job, sent, time.time() - 1)
    lost = client.models.predictions.create(model=job.model.id, input=sent)  # the create whose answer was lost
    for i in range(4):  # newer predictions push it onto the third page
        client.predictions.cancel(client.models.predictions.create(
            model=job.model.id, input={**sent, "prompt": f"later {i}"}).id)
    b = backend(s)
    run_job(job, b)
    check_clip(job)
    assert (b.stats["lists"], b.stats["adopted"], b.stats["creates"]) == (3, 1, 0)
    assert Journal().get(job.fingerprint).prediction_id == lost.id and len(server.predictions()) == 5

    # The same input made long before the submit time (beyond the skew allowance) is not adopted, and the
    # listing stops at the first prediction that old instead of paging through the whole history.
    write_unconfirmed(job, sent, time.time() + 600)
    b = backend(s, policy=replace(FAST, list_skew=60.0))
    run_job(job, b)
    assert (b.stats["lists"], b.stats["adopted"], b.stats["creates"]) == (1, 0, 1)
    assert len(server.predictions()) == 6


def test_no_wait_policy_creates_then_polls(server: FakeReplicate, workdir: Path) -> None:
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    b = backend(s, policy=NO_WAIT)
    run_job(job, b)
    check_clip(job)
    [record] = server.predictions()
    assert record["prefer"] is None
    assert hits(server, GET) >= 1 and b.stats["polls"] == hits(server, GET) and hits(server, LIST) == 0


def test_cancel_all_while_polling_cancels_through_the_api(server: FakeReplicate, workdir: Path) -> None:
    server.config.latency = 60.0
    s = settings()
    jobs = jobs_for(workdir, s, scenes=scenes(2))
    b = backend(s, policy=NO_WAIT)
    errors: list[str] = []

    def go(job: Job) -> None:
        try:
            b.produce(job, job.api_input(b.upload(job)), workdir / f"{job.scene.number}.mp4")
        except GenerationError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=go, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    wait_for(lambda: hits(server, GET) >= 2, what="both predictions being polled")
    b.cancel_all()
    for t in threads:
        t.join(5)
    assert len(errors) == 2 and all(e.startswith("canceled (interrupted)") for e in errors)
    assert [p["status"] for p in server.predictions()] == ["canceled"] * 2 and hits(server, LIST) == 0


def test_ctrl_c_during_held_creates_cancels_them_promptly(server: FakeReplicate, workdir: Path) -> None:
    server.config.latency = 60.0
    prompts, frames = make_concept(workdir)
    proc = subprocess.Popen(
        [*S9, "generate", str(prompts), "--frames", str(frames), "--backend", "replicate", "--workers", "3",
         "--aspect-ratio", "1:1"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
    )

    def held() -> bool:
        states = [e.state for e in Journal().entries().values()]
        return states == ["submitting"] * 3 and len(server.predictions()) == 3

    try:
        wait_for(held, what="3 creates held open")
        time.sleep(0.2)  # let the requests settle into the server's wait
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    assert took < 10, took  # the held creates were answered at once, not after the 60 s wait
    records = server.predictions()
    assert [p["status"] for p in records] == ["canceled"] * 3 and all(p["prefer"] == "wait=60" for p in records)
    assert hits(server, LIST) >= 1 and hits(server, CANCEL) == 3  # ids found by listing; one cancel each
    entries = Journal().entries().values()
    assert {(e.prediction_id, e.state) for e in entries} == {(p["id"], "canceled") for p in records}
    outputs = workdir / "outputs"
    assert not [p for p in outputs.rglob("*") if ".tmp" in p.name or p.suffix == ".mp4"]


# -- token hygiene ---------------------------------------------------------------------------------


def test_token_never_written_or_printed(tls_server: FakeReplicate, workdir: Path) -> None:
    tls_server.config.flag_word = "forbiddenword"
    tls_server.config.expected_token = TOKEN
    prompts, frames = make_concept(workdir, scenes=scenes(2, flagged=(2,)))
    code, out, err = run("generate", prompts, "--frames", frames, "--backend", "replicate", "--aspect-ratio", "1:1")
    assert code == 1 and "✓ Scene 1" in out and E005 in err
    written = [p for p in workdir.rglob("*") if p.is_file()]
    assert any(".s9" in p.parts for p in written) and any(p.name == "error.txt" for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in out + err


def test_token_scrubbed_from_errors(server: FakeReplicate, workdir: Path) -> None:
    # A wrong token: the 401 is reported per scene without echoing anything secret.
    server.config.expected_token = "r8_the_right_one"
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    # Checked before any work: bad input, one line, nothing uploaded.
    with pytest.raises(InputError) as rejected:
        backend(s)
    assert str(rejected.value).startswith("the Replicate API rejected the token (Unauthenticated (HTTP 401))")
    assert TOKEN not in repr(rejected.value) and hits(server, UPLOAD) == 0
    # A token revoked mid-run (the model's schema was fetched before): the 401 is reported per scene without
    # echoing anything secret.
    server.config.expected_token = TOKEN
    backend(s).preflight([job])
    server.config.expected_token = "r8_the_right_one"
    with pytest.raises(GenerationError) as err:
        run_job(job, ReplicateBackend(s, policy=FAST))
    assert str(err.value) == "Could not upload image: Unauthenticated (HTTP 401)"
    assert TOKEN not in repr(err.value) and TOKEN not in job.error_file.read_text()
    server.config.expected_token = None
    b = backend(s)
    assert b.session.scrub(f"detail: Bearer {TOKEN} and {TOKEN}") == "detail: Bearer [redacted] and [redacted]"


def test_rejected_token_is_exit_2_before_any_upload(server: FakeReplicate, workdir: Path) -> None:
    server.config.expected_token = "r8_the_right_one"
    prompts, frames = make_concept(workdir, scenes=scenes(2))
    code, out, err = run("generate", prompts, "--frames", frames, "--backend", "replicate")
    assert code == 2, err
    assert err.startswith("error: the Replicate API rejected the token (Unauthenticated (HTTP 401))")
    assert len(err.splitlines()) == 1 and TOKEN not in err + out
    assert hits(server, UPLOAD) == 0 and hits(server, CREATE) == 0
    assert not (workdir / "outputs").exists() and not (workdir / ".s9").exists()


def test_no_token_is_exit_2_with_one_line(workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    code, out, err = run("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", "--backend", "replicate")
    assert code == 2
    assert err == f"error: {NO_TOKEN}\n"
    assert not (workdir / "outputs").exists() and not (workdir / ".s9").exists()
    with pytest.raises(InputError, match="no Replicate API token"):
        get_backend("replicate", settings()).check()


def test_token_and_base_url_from_dotenv(server: FakeReplicate, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.config.expected_token = TOKEN
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    monkeypatch.delenv("REPLICATE_BASE_URL")
    (workdir / ".env").write_text(f"REPLICATE_API_KEY={TOKEN}\nREPLICATE_BASE_URL={server.base_url}\n")
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    code, out, err = run("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", "--backend", "replicate",
                         "--aspect-ratio", "1:1")
    assert code == 0, err
    assert "REPLICATE_API_KEY" not in os.environ  # read, not exported
    # The real environment wins over .env, and either variable name works.
    assert resolve_credentials({"REPLICATE_API_TOKEN": "from-env"}) == ("from-env", server.base_url)
    assert resolve_credentials({"REPLICATE_API_KEY": "k"}, dotenv_path=None) == ("k", None)


# -- cost of a clip --------------------------------------------------------------------------------


def test_http_requests_per_clip_stay_small(server: FakeReplicate, workdir: Path) -> None:
    server.config.latency = 3.0
    s = settings()
    jobs = jobs_for(workdir, s, scenes=scenes(2))
    summary = run_jobs(jobs, backend(s, policy=Policy()), workers=2)  # the shipped policy: Prefer: wait=60
    assert summary.ok
    per_clip = server.stats()["total"] / len(jobs)
    print(f"requests per clip at latency 3 s: {per_clip:g} {server.stats()['by_route']}")
    assert per_clip <= 4, server.stats()  # upload, create (held until done), download


def test_refuses_non_http_output_urls(server: FakeReplicate, workdir: Path) -> None:
    s = settings()
    b = backend(s)
    dest = workdir / "out.mp4"
    for url in ("file:///etc/passwd", "ftp://example.com/x.mp4", "data:video/mp4;base64,AAAA"):
        with pytest.raises(GenerationError, match="not an http"):
            b.downloads.download("pid", url, dest)
    assert not dest.exists()
