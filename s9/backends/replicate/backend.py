"""`ReplicateBackend`: the journal's rules for when to resume, adopt or create, over the parts that talk to the API.

Money is the thing to protect here, so:

* before anything is uploaded, every job's input is checked against the model's live schema (`schemas`): what
  the model would refuse is refused here, as bad input;
* every prediction is written to the journal (`s9.journal`), keyed by the job's fingerprint, *before* its
  create request is sent (state ``submitting``: model, exact input, submit time, deadline) and again with its id
  the moment the create answers; a later `produce` for the same fingerprint (the runner's re-download after a
  bad file, a re-run after a crash) resumes that prediction instead of paying for a new one;
* creates are sent with ``Prefer: wait=N`` (`Policy.wait`), so a clip is usually done when the create
  answers, and with ``Cancel-After``, so the server ends a prediction nobody is waiting for any more. When the
  id is unknown -- a run died mid-create, or a create ended ambiguously (5xx, read timeout, dropped connection)
  -- predictions created since the submit are listed (`recovery`) and one with our model and exactly our
  journaled input is adopted; only if none is found is a new one created. An unreadable journal entry is
  treated the same way, never as "nothing was paid";
* the budget holds during the run (`budget`): each create reserves its cost first, and the run stops creating
  before `budget.max_spend_usd` would be crossed; what each prediction cost is journaled for `s9 spend`;
* outputs are downloaded as soon as a prediction succeeds (the API deletes them after an hour); a journaled
  prediction older than that is reported as expired before a new one is paid for;
* a timeout or Ctrl-C cancels the prediction through the API, so nothing keeps running unseen -- including
  creates still held open, whose ids `cancel_all` finds by listing.

The API token never leaves the HTTP ``Authorization`` header: every message we raise is scrubbed of it.
"""

from __future__ import annotations

import functools
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import GenerationError, S9Error
from ...job import IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER, ImageURIs, Job, validate_job
from ...journal import CorruptEntry, Journal, JournalEntry, billing, parse_utc, utc_iso
from ...models import sunset_warning
from ...params import Settings
from .. import PhaseHook, harmless
from .budget import Budget
from .client import Gone, NotCreated, Policy, Pred, Session, describe, resolve_credentials
from .download import Downloads
from .files import Uploads
from .predictions import TERMINAL, Predictions
from .recovery import Finder, Pattern, Submission, jsonable
from .schemas import SCHEMA_DIR, Schemas

SUBMITTED, RUNNING, DOWNLOADING = "submitted", "running", "downloading"  # s9.runner.PHASES, as reported


def _phase(state: str | None) -> str:
    """A prediction's (or journal entry's) state as the phase shown: created and not yet running is submitted."""
    return RUNNING if state in ("processing", "succeeded") else SUBMITTED


def print_notice(message: str) -> None:
    """The default for `ReplicateBackend(notify=...)`: one warning line on stderr, as the CLI prints them."""
    print(f"⚠ {message}", file=sys.stderr, flush=True)


class ReplicateBackend:
    """`Backend` for Replicate. Thread-safe: `run_jobs` calls `upload`/`produce` from several threads."""

    name = "replicate"

    def __init__(
        self,
        settings: Settings,
        *,
        journal: Journal | None = None,
        policy: Policy | None = None,
        env: Mapping[str, str] | None = None,
        dotenv_path: str | Path | None = ".env",
        notify: Callable[[str], None] | None = None,
        **client_kwargs: Any,
    ) -> None:
        """`client_kwargs` go to `replicate.Client` (and on to httpx), e.g. ``transport=``; `notify` gets the
        warnings of a run (an expired output paid for again, a schema that could not be fetched)."""
        self.settings = settings
        self.timeout = float(settings.prediction_timeout_seconds)
        self.journal = journal or Journal()
        token, base_url = resolve_credentials(env, dotenv_path)
        self.session = Session(token, base_url, policy or Policy.from_env(env), client_kwargs)
        self.notify = notify or print_notice
        self.finder = Finder(self.session)
        self.uploads = Uploads(self.session)
        self.predictions = Predictions(self.session, self.journal, self.finder, self.timeout)
        self.downloads = Downloads(self.session)
        self.schemas = Schemas(self.session, self.journal.root.parent / SCHEMA_DIR, self.notify)
        self.budget = Budget(settings.max_spend_usd)
        self._checked: set[str] = set()  # fingerprints whose input passed the preflight
        self._inflight: dict[str, str] = {}  # prediction id -> fingerprint
        self._submitting: dict[str, Submission] = {}  # fingerprint -> create in flight (id not known yet)

    @property
    def policy(self) -> Policy:
        return self.session.policy

    @property
    def stats(self) -> Counter[str]:
        return self.session.stats

    # -- Backend protocol -------------------------------------------------------------------------
    def check(self) -> None:
        """Before any work: a well-formed token must exist and the API must accept it."""
        self.session.check_token()

    def preflight(self, jobs: Sequence[Job]) -> None:
        """Before any upload: every job's input against its model's live schema (fetched once a day) and
        cross-field rules; `InputError` (one line) for the first mismatch, or for a model that is gone."""
        self._guard("could not check the model's schema", lambda: self._preflight(jobs))

    def upload(self, job: Job) -> str:
        """Upload the job's images once per distinct image (by content hash); the first frame's URL, carrying
        the end frame's (`ImageURIs`)."""
        return self._guard("Could not upload image", lambda: self._upload(job))

    def produce(self, job: Job, api_input: dict[str, Any], dest: Path, on_event: PhaseHook | None = None) -> None:
        """Resume the journaled prediction for this job, or create one; wait; stream its output to `dest`.

        `on_event(phase, prediction_id)` hears "submitted" (before the create is sent, and with the id once it
        answers or a journaled one is resumed), "running" and "downloading"; it changes nothing that is sent."""
        emit = harmless(on_event)
        self._guard("unexpected error", lambda: self._produce(job, api_input, Path(dest), emit))

    def receipt(self, job: Job) -> dict[str, Any]:
        """From the journal: every prediction paid for this clip (one replaced after its output expired
        included), and the current one's id and the API's `predict_time`."""
        entry = self.journal.get(job.fingerprint)
        charges = entry.charges if entry is not None else []
        billed = entry.billed if entry is not None and entry.billed else {}
        return {"backend": self.name, "model": job.model.id, "output_seconds": job.duration,
                "cost_usd": round(sum(c.get("cost_usd") or 0.0 for c in charges), 6),
                "predict_seconds": billed.get("predict_time"), "prediction_id": billed.get("prediction_id"),
                "predictions": len(charges)}

    def cancel_all(self) -> None:
        """Cancel every in-flight prediction through the API and wake every waiting `produce`.

        Creates still held open by ``Prefer: wait`` have no id yet: they are found by listing and canceled,
        which makes the server answer them (as canceled) at once, so their threads return promptly.
        """
        s = self.session
        s.canceled.set()
        with s.lock:
            targets = dict(self._inflight)
            held = list(self._submitting.values())
        if not s.started or not (targets or held):
            return
        tasks: list[Callable[[], object]] = [
            functools.partial(self.predictions.cancel, pid, fp) for pid, fp in targets.items()
        ]
        if held:
            tasks.append(functools.partial(
                self.finder.cancel_held, held, self._still_submitting,
                lambda pid, fp: self.predictions.cancel(pid, fp, journal=False)))
        with ThreadPoolExecutor(max_workers=min(8, len(tasks)), thread_name_prefix="s9-cancel") as pool:
            list(pool.map(lambda task: task(), tasks))

    def close(self) -> None:
        self.session.close()

    def _guard(self, what: str, call: Callable[[], Any]) -> Any:
        """Every error leaves as one scrubbed line of the S9Error family, never a raw exception text."""
        try:
            return call()
        except S9Error as exc:
            raise type(exc)(self.session.scrub(str(exc))) from None
        except Exception as exc:
            raise GenerationError(self.session.scrub(f"{what}: {describe(exc)}")) from None

    # -- preflight and upload ---------------------------------------------------------------------
    def _preflight(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            validate_job(job, self.schemas.get(job.model))
            with self.session.lock:
                self._checked.add(job.fingerprint)

    def _upload(self, job: Job) -> ImageURIs:
        with self.session.lock:
            checked = job.fingerprint in self._checked
        if not checked:  # a caller that skipped `preflight`: still nothing uploaded for a job the model refuses
            self._preflight([job])
        first = self.uploads.upload(job.first_frame, job.frame_sha256)
        last = None
        if job.next_frame is not None and job.next_frame_sha256 is not None:
            last = self.uploads.upload(job.next_frame, job.next_frame_sha256)
        return ImageURIs(first, last)

    # -- produce ----------------------------------------------------------------------------------
    def _produce(self, job: Job, api_input: dict[str, Any], dest: Path, emit: PhaseHook) -> None:
        s = self.session
        s.api()
        s.check_canceled()
        for round_ in (1, 2):
            entry, prediction = self._obtain(job, api_input, emit)
            pid = entry.prediction_id
            emit(_phase(prediction.status if prediction is not None else entry.state), pid)
            try:
                done = self.predictions.wait(job, entry, prediction, on_status=lambda status, p=pid: emit(
                    _phase(status), p))
                self._bill(job, done)
                emit(DOWNLOADING, pid)
                self.downloads.download(pid, done.output, dest, on_url=functools.partial(self._downloaded, job, pid))
                return
            except Gone as gone:
                self.predictions.journal_set(job.fingerprint, pid, state=gone.state, error=str(gone))
                if round_ == 2:
                    raise GenerationError(f"{gone} (even for a new prediction)") from None
                s.count("replaced")
            except GenerationError as exc:
                note = sunset_warning(job.model)
                if note and "canceled (interrupted)" not in str(exc):  # say why, wherever it failed
                    raise GenerationError(f"{exc} ({note.split(': ', 1)[1]})") from None
                raise
            finally:
                with s.lock:
                    self._inflight.pop(pid, None)

    def _downloaded(self, job: Job, pid: str, url: str) -> None:
        self.predictions.journal_set(job.fingerprint, pid, state="succeeded", output_url=url)

    def _bill(self, job: Job, prediction: Pred) -> None:
        """Journal what a succeeded prediction cost: seconds of output x the model's price per second."""
        seconds = prediction.metrics.get("video_output_duration_seconds")
        seconds = float(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else job.duration
        predict_time = prediction.metrics.get("predict_time")
        billed = billing(prediction.id, job.model.id, seconds, self.settings.price_per_second(job.model.id),
                         predict_time if isinstance(predict_time, int | float) else None,
                         prediction.completed_at, job.concept, job.scene.number)
        self.predictions.journal_set(job.fingerprint, prediction.id, billed=billed)

    def _obtain(self, job: Job, api_input: dict[str, Any], emit: PhaseHook) -> tuple[JournalEntry, Pred | None]:
        """The journaled prediction for this job when it is still worth following, else a new one.

        Returns the entry and, for a new or adopted prediction, the API's view of it (so no status check is
        needed yet). The per-fingerprint lock, held through the create, makes "look up or create" atomic
        across threads and processes.
        """
        fp = job.fingerprint
        self.session.api()
        with self.journal.lock(fp):
            try:
                entry = self.journal.read(fp)
            except CorruptEntry as bad:
                entry = self._recover_corrupt(job, bad)
            exclude: set[str] = set()
            if entry is not None and job.take > entry.take:
                # A fresh take: the journaled prediction is deliberately not followed (nor looked for by listing);
                # a new one replaces the entry, which keeps the old one's billed record (`earlier`).
                self.session.count("fresh_takes")
                if entry.prediction_id:
                    exclude.add(entry.prediction_id)
            elif entry is not None and entry.model == job.model.id:
                if entry.resumable and self._expired(job, entry):
                    entry = self.journal.record(fp, replace(entry, state="expired", updated_at=time.time(),
                                                            error="output expired before it was downloaded"))
                if entry.resumable:
                    self.session.count("resumed")
                    self._track(entry.prediction_id, fp)
                    return entry, None
                if entry.unconfirmed:  # a run died (or gave up) mid-create: did that create land?
                    found = self._recover(fp, entry)
                    if found is not None:
                        return self._adopt(fp, entry, found), found
                elif entry.prediction_id:
                    exclude.add(entry.prediction_id)  # dead, and possibly with this very input
            self.session.check_canceled()
            return self._submit(job, api_input, exclude, entry, emit)

    def _expired(self, job: Job, entry: JournalEntry) -> bool:
        """A journaled success older than the API's retention: its output is gone. Say so before paying again."""
        if entry.state != "succeeded":
            return False
        finished = parse_utc((entry.billed or {}).get("completed_at")) or entry.updated_at
        age = time.time() - finished
        if age < self.policy.output_ttl:
            return False
        cost = job.duration * self.settings.price_per_second(job.model.id)
        self.session.count("expired")
        self.notify(
            f"{job.label}: prediction {entry.prediction_id} succeeded {age / 3600:.1f} h ago and its output has "
            f"expired (the API deletes outputs after {self.policy.output_ttl / 3600:g} h); creating a new one "
            f"(${cost:.2f}, counted against the budget)")
        return True

    def _recover(self, fp: str, entry: JournalEntry) -> Pred | None:
        """The prediction an unanswered create made, found by listing; None when it never landed."""
        if not isinstance(entry.input, dict):
            return None  # nothing to recognise it by (a hand-edited entry): treat as never sent
        sub = Submission(fp, entry.model, jsonable(entry.input), entry.submitted_epoch)
        self.session.count("recoveries")
        return self.finder.find_one(sub)

    def _recover_corrupt(self, job: Job, bad: CorruptEntry) -> JournalEntry | None:
        """An unreadable entry may stand for a paid prediction: look for it as after a crash, and adopt it; when
        the listing finds nothing, refuse the scene rather than pay a second time unknowingly."""
        s = self.session
        s.count("corrupt_entries")
        images = {job.model.image_field: job.frame_sha256}
        if job.next_frame_sha256 is not None and job.model.last_frame_field:
            images[job.model.last_frame_field] = job.next_frame_sha256
        pattern = Pattern(job.model.id, jsonable(job.api_input(IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER)), images)
        # The entry was last written after its create: look back one timeout and one output lifetime before that.
        since = bad.mtime - self.timeout - self.policy.output_ttl - self.policy.list_skew
        try:
            found = self.finder.find_job(pattern, since)
        except Exception as exc:  # a failed listing is never "not found"
            raise GenerationError(
                f"journal entry {bad.path} is unreadable and listing predictions failed ({describe(exc)}); not "
                "creating another -- run again to look again") from None
        if found is None:
            raise GenerationError(
                f"journal entry {bad.path} is unreadable and no prediction for this scene was found by listing; "
                f"delete {bad.path} for a fresh take (a prediction it recorded, if any, is not reused)")
        s.count("adopted")
        return self.journal.record(job.fingerprint, JournalEntry(
            found.id, job.model.id, found.status, parse_utc(found.created_at) or time.time(), time.time(),
            label=job.label, input=found.input, submitted_at=found.created_at, deadline=found.deadline,
            concept=job.concept, scene=job.scene.number,
            error=found.error if found.status == "failed" else None))

    def _adopt(self, fp: str, entry: JournalEntry, prediction: Pred) -> JournalEntry:
        """Record a prediction found by listing as this fingerprint's, and follow it."""
        entry = self.journal.record(fp, replace(
            entry, prediction_id=prediction.id, state=prediction.status, updated_at=time.time(),
            error=prediction.error if prediction.status == "failed" else None,
            deadline=prediction.deadline or entry.deadline,
        ))
        self.session.count("adopted")
        self._track(prediction.id, fp, prediction.status)
        return entry

    def _submit(self, job: Job, api_input: dict[str, Any], exclude: set[str],
                previous: JournalEntry | None, emit: PhaseHook) -> tuple[JournalEntry, Pred]:
        """Reserve its cost, journal the create, then send it; record the id the moment the answer arrives."""
        s = self.session
        fp, model = job.fingerprint, job.model.id
        cost = job.duration * self.settings.price_per_second(model)
        try:
            self.budget.reserve(cost)
        except NotCreated as exc:
            s.count("budget_refused")
            raise GenerationError(str(exc)) from None
        sent = jsonable(api_input)
        now = time.time()
        earlier = previous.charges if previous is not None else []
        # Written before the request goes out: a run killed while the create is held open leaves this, and
        # the next run finds the prediction by listing instead of paying for it again.
        entry = self.journal.record(fp, JournalEntry.submitting(
            model, sent, now, label=job.label, deadline=utc_iso(now + self.timeout), concept=job.concept,
            scene=job.scene.number, earlier=earlier or None, take=job.take))
        sub = Submission(fp, model, sent, now, frozenset(exclude))
        with s.lock:
            self._submitting[fp] = sub
            late = s.canceled.is_set()
        try:
            if late:  # cancel_all already took its snapshot: nothing was sent, so say so
                self.budget.release(cost)
                self.journal.record(fp, replace(entry, state="rejected", error="canceled before it was sent"))
                s.check_canceled()
            try:
                emit(SUBMITTED, None)  # sent; held open by Prefer: wait, the id comes with the answer
                prediction, adopted = self.predictions.create(job, api_input, sub, deadline=now + self.timeout)
            except NotCreated as exc:
                self.budget.release(cost)
                self.journal.record(fp, replace(entry, state="rejected", error=str(exc), updated_at=time.time()))
                raise GenerationError(str(exc)) from None
            except BaseException:
                if sub.found is not None:  # cancel_all found and canceled it while we waited
                    pid, state = sub.found
                    self.journal.record(fp, replace(entry, prediction_id=pid, state=state, updated_at=time.time()))
                raise
            if adopted:
                return self._adopt(fp, entry, prediction), prediction
            entry = self.journal.record(fp, replace(
                entry, prediction_id=prediction.id, state=prediction.status, updated_at=time.time(),
                error=prediction.error if prediction.status == "failed" else None,
                deadline=prediction.deadline or entry.deadline,
            ))
            s.count("creates")
            self._track(prediction.id, fp, prediction.status)
            return entry, prediction
        finally:
            with s.lock:  # after _track: cancel_all always sees this create in one of the two maps
                if self._submitting.get(fp) is sub:
                    del self._submitting[fp]

    def _still_submitting(self, sub: Submission) -> bool:
        with self.session.lock:
            return self._submitting.get(sub.fp) is sub

    def _track(self, pid: str, fp: str, status: str | None = None) -> None:
        s = self.session
        with s.lock:
            self._inflight[pid] = fp
            late = s.canceled.is_set()
        if late:  # cancel_all ran while this prediction was being created: it must not run on unseen
            if status not in TERMINAL:
                self.predictions.cancel(pid, fp)
            s.check_canceled(pid)
