"""Running jobs: one scene end to end (`run_job`), many in parallel with a summary (`run_jobs`)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from . import debugfile, video
from .atomic import atomic_path
from .backends import Backend
from .errors import GenerationError, InputError, S9Error
from .job import Job

# A clip that fails verification is fetched/rendered once more before the scene fails.
VERIFY_ATTEMPTS = 2


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

    @property
    def concept(self) -> str:
        """The concept this scene belongs to; labels are `{concept} scene {n}` wherever a result is made."""
        return self.job.concept if self.job is not None else self.label.rsplit(" scene ", 1)[0]


@dataclass
class Summary:
    results: list[SceneResult]
    seconds: float
    workers: int

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


Listener = Callable[[str, SceneResult], None]  # ("start" | "done", result-so-far)


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


def run_job(job: Job, backend: Backend) -> list[Path]:
    """Generate one scene: debug file first (it records what is sent), then a verified clip, atomically."""
    written: list[Path] = []
    tmp: Path | None = None
    try:
        image_uri = backend.upload(job)
        api_input = job.api_input(image_uri)
        written.append(debugfile.write(job, image_uri, api_input, backend.name))
        with atomic_path(job.output, suffix=".mp4") as tmp:
            for attempt in range(1, VERIFY_ATTEMPTS + 1):
                backend.produce(job, api_input, tmp)
                try:
                    video.verify(tmp, duration=job.duration, audio=job.makes_audio, width=job.width, height=job.height)
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

    def one(job: Job) -> SceneResult:
        result = SceneResult(job.label, job.scene.number, ok=False, job=job)
        notify("start", result)
        t0 = time.monotonic()
        try:
            result.files = run_job(job, backend)
            result.ok = True
        except S9Error as exc:
            result.error = str(exc)
        except Exception as exc:  # a bug in one scene must not take the others down
            result.error = f"unexpected error: {type(exc).__name__}: {exc}"
        result.seconds = time.monotonic() - t0
        notify("done", result)
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s9-scene")
    pending: set[Future[SceneResult]] = {pool.submit(one, job) for job in jobs}
    try:
        while pending:
            # A timeout keeps the main thread responsive to Ctrl-C.
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            results.extend(f.result() for f in done)
    except KeyboardInterrupt:
        backend.cancel_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    order = {job.label: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order.get(r.label, len(order)))
    return Summary(results=results, seconds=time.monotonic() - started, workers=workers)
