"""`ReplicateBackend`: the journal's rules for when to resume, adopt or create, over the parts that talk to the API.

Money is the thing to protect here, so:

* every prediction is written to the journal (`s9.journal`), keyed by the job's fingerprint, *before* its
  create request is sent (state ``submitting``: model, exact input, submit time) and again with its id the
  moment the create answers; a later `produce` for the same fingerprint (the runner's re-download after a
  bad file, a re-run after a crash) resumes that prediction instead of paying for a new one;
* creates are sent with ``Prefer: wait=N`` (`Policy.wait`), so a clip is usually done when the create
  answers: no polling delay, three requests per clip. The price is that the id is unknown while the create
  is held open. So when the id is unknown -- a run died mid-create, or a create ended ambiguously (5xx,
  read timeout, dropped connection: the server may have made it) -- recent predictions are listed
  (`recovery`) and one with our model and exactly our journaled input is adopted; only if none is found is
  a new one created. A 429 means nothing was created and is simply retried;
* a timeout or Ctrl-C cancels the prediction through the API, so nothing keeps running unseen -- including
  creates still held open, whose ids `cancel_all` finds by listing.

The API token never leaves the HTTP ``Authorization`` header: every message we raise is scrubbed of it.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import GenerationError, S9Error
from ...job import Job
from ...journal import Journal, JournalEntry
from ...params import Settings
from .client import Gone, NotCreated, Policy, Session, describe, resolve_credentials
from .download import Downloads
from .files import Uploads
from .predictions import TERMINAL, Predictions
from .recovery import Finder, Submission, jsonable


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
        **client_kwargs: Any,
    ) -> None:
        """`client_kwargs` go to `replicate.Client` (and on to httpx), e.g. ``transport=``."""
        self.settings = settings
        self.timeout = float(settings.prediction_timeout_seconds)
        self.journal = journal or Journal()
        token, base_url = resolve_credentials(env, dotenv_path)
        self.session = Session(token, base_url, policy or Policy.from_env(env), client_kwargs)
        self.finder = Finder(self.session)
        self.uploads = Uploads(self.session)
        self.predictions = Predictions(self.session, self.journal, self.finder, self.timeout)
        self.downloads = Downloads(self.session)
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
        """Before any work: a token must exist and the API must accept it."""
        self.session.check_token()

    def upload(self, job: Job) -> str:
        """Upload the first frame once per distinct image (by content hash); return its URL."""
        return self._guard("Could not upload image", lambda: self.uploads.upload(job.first_frame, job.frame_sha256))

    def produce(self, job: Job, api_input: dict[str, Any], dest: Path) -> None:
        """Resume the journaled prediction for this job, or create one; wait; stream its output to `dest`."""
        self._guard("unexpected error", lambda: self._produce(job, api_input, Path(dest)))

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

    # -- produce ----------------------------------------------------------------------------------
    def _produce(self, job: Job, api_input: dict[str, Any], dest: Path) -> None:
        s = self.session
        s.api()
        s.check_canceled()
        for round_ in (1, 2):
            entry, prediction = self._obtain(job, api_input)
            pid = entry.prediction_id
            try:
                output = self.predictions.wait(job, entry, prediction)
                self.downloads.download(pid, output, dest, on_url=functools.partial(self._downloaded, job, pid))
                return
            except Gone as gone:
                self.predictions.journal_set(job.fingerprint, pid, state=gone.state, error=str(gone))
                if round_ == 2:
                    raise GenerationError(f"{gone} (even for a new prediction)") from None
                s.count("replaced")
            finally:
                with s.lock:
                    self._inflight.pop(pid, None)

    def _downloaded(self, job: Job, pid: str, url: str) -> None:
        self.predictions.journal_set(job.fingerprint, pid, state="succeeded", output_url=url)

    def _obtain(self, job: Job, api_input: dict[str, Any]) -> tuple[JournalEntry, Any | None]:
        """The journaled prediction for this job when it is still worth following, else a new one.

        Returns the entry and, for a new or adopted prediction, the API's view of it (so no status check is
        needed yet). The per-fingerprint lock, held through the create, makes "look up or create" atomic
        across threads and processes.
        """
        fp = job.fingerprint
        self.session.api()
        with self.journal.lock(fp):
            entry = self.journal.get(fp)
            exclude: set[str] = set()
            if entry is not None and entry.model == job.model.id:
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
            return self._submit(job, api_input, exclude)

    def _recover(self, fp: str, entry: JournalEntry) -> Any | None:
        """The prediction an unanswered create made, found by listing; None when it never landed."""
        if not isinstance(entry.input, dict):
            return None  # nothing to recognise it by (a hand-edited entry): treat as never sent
        sub = Submission(fp, entry.model, jsonable(entry.input), entry.submitted_epoch)
        self.session.count("recoveries")
        return self.finder.find_one(sub)

    def _adopt(self, fp: str, entry: JournalEntry, prediction: Any) -> JournalEntry:
        """Record a prediction found by listing as this fingerprint's, and follow it."""
        entry = self.journal.record(fp, replace(
            entry, prediction_id=prediction.id, state=prediction.status, updated_at=time.time(),
            error=prediction.error if prediction.status == "failed" else None,
        ))
        self.session.count("adopted")
        self._track(prediction.id, fp, prediction.status)
        return entry

    def _submit(self, job: Job, api_input: dict[str, Any], exclude: set[str]) -> tuple[JournalEntry, Any]:
        """Journal the create, then send it; record the id the moment the answer arrives."""
        s = self.session
        fp, model = job.fingerprint, job.model.id
        sent = jsonable(api_input)
        now = time.time()
        # Written before the request goes out: a run killed while the create is held open leaves this, and
        # the next run finds the prediction by listing instead of paying for it again.
        entry = self.journal.record(fp, JournalEntry.submitting(model, sent, now, label=job.label))
        sub = Submission(fp, model, sent, now, frozenset(exclude))
        with s.lock:
            self._submitting[fp] = sub
            late = s.canceled.is_set()
        try:
            if late:  # cancel_all already took its snapshot: nothing was sent, so say so
                self.journal.record(fp, replace(entry, state="rejected", error="canceled before it was sent"))
                s.check_canceled()
            try:
                prediction, adopted = self.predictions.create(job, api_input, sub, deadline=now + self.timeout)
            except NotCreated as exc:
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
