"""Running jobs: one scene end to end (`run_job`), many in parallel with a summary (`run_jobs`), or taken from a
source as workers free up (`run_stream`)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from . import debugfile
from .atomic import atomic_path
from .backends import Backend, PhaseHook
from .errors import GenerationError, InputError, S9Error
from .job import Job

# A clip that fails verification is fetched/rendered once more before the scene fails.
VERIFY_ATTEMPTS = 2


# A scene's phases as a run reports them (listener kind "phase"): the runner's own, and what a backend says
# through the per-job hook it is handed (`Backend.produce(..., on_event=)`).
QUEUED, UPLOADING, SUBMITTED, RUNNING, DOWNLOADING, DONE, FAILED = (
    "queued", "uploading", "submitted", "running", "downloading", "done", "failed")
PHASES = (QUEUED, UPLOADING, SUBMITTED, RUNNING, DOWNLOADING, DONE, FAILED)


@dataclass
class SceneResult:
    label: str
    scene_number: int
    ok: bool
    job: Job | None = None
    error: str | None = None
    skipped: bool = False
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    phase: str = QUEUED  # where the scene is now (see PHASES)
    prediction_id: str | None = None  # once the backend knows it (replicate)
    started: float | None = None  # time.monotonic() when a worker took it

    @property
    def concept(self) -> str:
        """The concept this scene belongs to; labels are `{concept} scene {n}` wherever a result is made."""
        return self.job.concept if self.job is not None else self.label.rsplit(" scene ", 1)[0]


@dataclass
class Summary:
    results: list[SceneResult]
    seconds: float
    workers: int
    # Files written by results that were slimmed down (`run_stream` keeps no paths), by suffix.
    file_counts: Counter[str] = field(default_factory=Counter)

    def count_files(self, suffix: str) -> int:
        return self.file_counts[suffix] + sum(1 for f in self.files_written if f.suffix == suffix)

    @property
    def succeeded(self) -> list[SceneResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[SceneResult]:
        return [r for r in self.results if not r.ok]

    @property
    def files_written(self) -> list[Path]:
        return [f for r in self.results for f in r.files]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def success_rate(self) -> str:
        total = len(self.results)
        done = len(self.succeeded)
        percent = round(100 * done / total) if total else 100
        return f"Success rate: {done}/{total} ({percent}%)"


# (kind, result-so-far): "phase" whenever `result.phase` (or its prediction id) changes, from "queued" on;
# "start" when a worker takes the scene; "done" at the end. Listeners ignore kinds they do not know.
Listener = Callable[[str, SceneResult], None]


def check_writable(folder: Path) -> None:
    """Fail early, as bad input, when outputs could not be written at all."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".s9-write-check."):
            pass
    except OSError as exc:
        raise InputError(f"{folder}: output directory is not writable ({exc.strerror or exc})") from None


def _naming_the_clip(message: str, tmp: Path | None, job: Job) -> str:
    """`message` with our temp file's name (as given or absolute) replaced by the clip the user asked for."""
    if tmp is None:
        return message
    for name in sorted({str(tmp.resolve()), str(tmp.absolute()), str(tmp)}, key=len, reverse=True):
        message = message.replace(name, str(job.output))
    return message


def run_job(job: Job, backend: Backend, on_event: PhaseHook | None = None) -> list[Path]:
    """Generate one scene: debug file first (it records what is sent), then a verified clip, atomically.

    `on_event(phase, prediction_id)` hears the scene's phases (the backend's included); it never changes what
    is sent."""
    from .video import verify  # here: `s9 status` and `s9 plan` import the runner, not PyAV and numpy

    written: list[Path] = []
    tmp: Path | None = None
    try:
        if on_event is not None:
            on_event(UPLOADING, None)
        image_uri = backend.upload(job)
        api_input = job.api_input(image_uri)
        written.append(debugfile.write(job, image_uri, api_input, backend.name))
        with atomic_path(job.output, suffix=".mp4") as tmp:
            for attempt in range(1, VERIFY_ATTEMPTS + 1):
                backend.produce(job, api_input, tmp, on_event=on_event)
                try:
                    verify(tmp, duration=job.duration, audio=job.makes_audio, width=job.width, height=job.height)
                    break
                except GenerationError:
                    if attempt == VERIFY_ATTEMPTS:
                        raise
        written.append(job.output)
        debugfile.clear_error(job)
        debugfile.write_receipt(job, backend.receipt(job))
        debugfile.clear_others(job)
        return written
    except S9Error as exc:
        # Name the clip the user asked for, not our temp file (a full disk, a failed encode, a bad download).
        message = _naming_the_clip(str(exc), tmp, job)
        _keep_error(job, message)
        if message == str(exc):
            raise
        raise (InputError if isinstance(exc, InputError) else GenerationError)(message) from None
    except OSError as exc:
        message = _naming_the_clip(f"{exc.filename or job.output}: {exc.strerror or exc}", tmp, job)
        _keep_error(job, message)
        raise GenerationError(message) from None


def _keep_error(job: Job, message: str) -> None:
    # The original error matters more than failing to record it.
    with contextlib.suppress(OSError):
        debugfile.write_error(job, message)


def _phase_hook(result: SceneResult, notify: Listener | None) -> PhaseHook | None:
    """The per-scene hook a backend reports phases through: each change becomes a "phase" event."""
    if notify is None:
        return None

    def on_event(phase: str, prediction_id: str | None = None) -> None:
        if phase == result.phase and (prediction_id is None or prediction_id == result.prediction_id):
            return
        result.phase = phase
        result.prediction_id = prediction_id or result.prediction_id
        with contextlib.suppress(Exception):  # showing progress must never fail a (paid) scene
            notify("phase", result)

    return on_event


def _run_scene(result: SceneResult, backend: Backend, listener: Listener | None) -> SceneResult:
    """One worker's scene: "start", the job with its phases, "done". One scene's failure stays its own."""
    notify = listener or (lambda _kind, _result: None)
    assert result.job is not None
    t0 = result.started = time.monotonic()
    notify("start", result)
    try:
        result.files = run_job(result.job, backend, _phase_hook(result, listener))
        result.ok = True
    except S9Error as exc:
        result.error = str(exc)
    except Exception as exc:  # a bug in one scene must not take the others down
        result.error = f"unexpected error: {type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - t0
    result.phase = DONE if result.ok else FAILED
    notify("done", result)
    return result


def run_jobs(
    jobs: Sequence[Job], backend: Backend, workers: int, listener: Listener | None = None
) -> Summary:
    """Run every job with `workers` threads; one scene's failure never stops the others.

    Ctrl-C cancels everything in flight through the backend, waits for the workers to let go of their temp
    files, and re-raises KeyboardInterrupt.
    """
    notify = listener or (lambda _kind, _result: None)
    started = time.monotonic()
    results: list[SceneResult] = []
    # Every scene is queued from the start: a listener can show what waits for a worker, not only what runs.
    queued = {job.label: SceneResult(job.label, job.scene.number, ok=False, job=job) for job in jobs}
    for result in queued.values():
        notify("phase", result)
    _pump(jobs, backend, workers, listener, lambda job: queued[job.label], results.append)
    order = {job.label: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order.get(r.label, len(order)))
    return Summary(results=results, seconds=time.monotonic() - started, workers=workers)


def _slim(result: SceneResult) -> SceneResult:
    """What a summary keeps of a finished scene when there are thousands: no paths (their count is kept), and
    the job only of a failed scene (the summary points at its error file)."""
    return SceneResult(result.label, result.scene_number, result.ok, job=None if result.ok else result.job,
                       error=result.error, skipped=result.skipped, seconds=result.seconds, phase=result.phase,
                       prediction_id=result.prediction_id)


def run_stream(
    source: Iterable[Job | SceneResult], backend: Backend, workers: int, listener: Listener | None = None,
    between: Callable[[], None] | None = None, queued: Iterable[SceneResult] = (),
) -> Summary:
    """`run_jobs` for a run of any size: a job is taken from `source` only when a worker is free, so a run of
    10,000 scenes holds `workers` jobs at a time, not 10,000 (a `SceneResult` from the source is a scene that
    failed before it could be sent: it is reported as done). `between()` runs in the calling thread after
    completions and at least every 0.2 s -- where the pipeline records what finished, as it finishes. The
    summary keeps each result without its job and paths (it counts the files instead). `queued`: the scenes
    known to come (label and number), announced to the listener up front so it can count what waits."""
    notify = listener or (lambda _kind, _result: None)
    for result in queued:
        notify("phase", result)
    started = time.monotonic()
    summary = Summary([], 0.0, workers)

    def keep(result: SceneResult) -> None:
        summary.file_counts.update(f.suffix for f in result.files)
        summary.results.append(_slim(result))

    _pump(source, backend, workers, listener, lambda job: SceneResult(job.label, job.scene.number, ok=False, job=job),
          keep, between)
    summary.seconds = time.monotonic() - started
    return summary


def _pump(source: Iterable[Job | SceneResult], backend: Backend, workers: int, listener: Listener | None,
          result_for: Callable[[Job], SceneResult], keep: Callable[[SceneResult], None],
          between: Callable[[], None] | None = None) -> None:
    """The worker pool both runs share: a job goes to a worker as one frees up (`result_for` gives the result
    it fills in), every finished result goes to `keep`, and a `SceneResult` in the source (a scene that failed
    before it could be sent) is reported as done at once. Ctrl-C cancels what is in flight through the backend,
    waits for the workers to let go of their temp files, and re-raises."""
    notify = listener or (lambda _kind, _result: None)
    items = iter(source)
    exhausted = False
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s9-scene")
    pending: set[Future[SceneResult]] = set()
    try:
        while True:
            while not exhausted and len(pending) < max(1, workers):
                item = next(items, None)
                if item is None:
                    exhausted = True
                elif isinstance(item, SceneResult):
                    item.phase = DONE if item.ok else FAILED
                    notify("done", item)
                    keep(item)
                else:
                    pending.add(pool.submit(_run_scene, result_for(item), backend, listener))
            if not pending:
                break
            # A timeout keeps the main thread responsive to Ctrl-C and `between` regular.
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                keep(future.result())
            if between is not None:
                between()
    except KeyboardInterrupt:
        backend.cancel_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
