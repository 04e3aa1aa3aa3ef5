"""The Replicate backend: upload the first frame, create a prediction, wait for it, stream the clip to disk.

Money is the thing to protect here, so:

* every prediction is written to the journal (`s9.journal`), keyed by the job's fingerprint, *before* its
  create request is sent (state ``submitting``: model, exact input, submit time) and again with its id the
  moment the create answers; a later `produce` for the same fingerprint (the runner's re-download after a
  bad file, a re-run after a crash) resumes that prediction instead of paying for a new one;
* creates are sent with ``Prefer: wait=N`` (`Policy.wait`), so a clip is usually done when the create
  answers: no polling delay, three requests per clip. The price is that the id is unknown while the create
  is held open. So when the id is unknown -- a run died mid-create, or a create ended ambiguously (5xx,
  read timeout, dropped connection: the server may have made it) -- recent predictions are listed
  (``GET /v1/predictions``, newest first, back to the submit time minus `Policy.list_skew`) and one with
  our model and exactly our journaled input (the upload URL in it makes it unique) is adopted; only if none
  is found is a new one created. A 429 means nothing was created and is simply retried;
* a timeout or Ctrl-C cancels the prediction through the API, so nothing keeps running unseen -- including
  creates still held open, whose ids `cancel_all` finds by listing.

The API token never leaves the HTTP ``Authorization`` header: every message we raise is scrubbed of it.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import httpx
import replicate
from dotenv import dotenv_values
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput, transform_output

from ..errors import GenerationError, InputError, S9Error
from ..job import Job
from ..journal import Journal, JournalEntry, parse_utc
from ..params import Settings

TOKEN_VARS = ("REPLICATE_API_TOKEN", "REPLICATE_API_KEY")
NO_TOKEN = "no Replicate API token: set REPLICATE_API_TOKEN (or REPLICATE_API_KEY) in the environment or in .env"
REDACTED = "[redacted]"

T = TypeVar("T")


TERMINAL = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True)
class Policy:
    """Waiting, retry and polling knobs. With the defaults a clip that takes under a minute costs three HTTP
    requests (upload, create held by ``Prefer: wait``, download); polling only follows a longer wait."""

    wait: int = 60  # Prefer: wait=N on create, seconds (the API's max is 60); 0 = create, then poll

    poll_initial: float = 1.0  # first status check this long after create (REPLICATE_POLL_INTERVAL overrides)
    poll_factor: float = 1.5  # each wait is this much longer than the last...
    poll_max: float = 8.0  # ...up to this
    poll_errors: int = 5  # consecutive failed status checks before the scene fails
    attempts: int = 6  # tries for a create or an upload (1 + 5 retries) on 429 / 5xx / connect errors
    backoff_base: float = 1.0  # seconds before the first retry without Retry-After; doubles each time
    backoff_max: float = 30.0  # cap for one backoff wait, also for Retry-After
    download_attempts: int = 3  # tries for one download on network errors / 5xx (same prediction)
    list_skew: float = 120.0  # a recovery listing goes back to the submit time minus this (clock skew)
    list_pages: int = 5  # ...or at most this many pages (100 predictions each on the real API)
    list_gets: int = 10  # candidates fetched one by one when a listing leaves `input` out
    cancel_list_seconds: float = 5.0  # how long Ctrl-C keeps listing for creates that are still held open

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Policy:
        env = os.environ if env is None else env
        try:
            initial = float(env.get("REPLICATE_POLL_INTERVAL", ""))
        except ValueError:
            return cls()
        return cls(poll_initial=initial) if initial > 0 else cls()


def resolve_credentials(
    env: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env"
) -> tuple[str | None, str | None]:
    """(token, base URL): the real environment first, then `.env` in the working directory.

    `.env` is read without touching os.environ, so nothing else in the process sees the token.
    """
    env = os.environ if env is None else env
    file_values: dict[str, str | None] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        file_values = dict(dotenv_values(dotenv_path))

    def first(*names: str) -> str | None:
        for source in (env, file_values):
            for name in names:
                value = (source.get(name) or "").strip()
                if value:
                    return value
        return None

    return first(*TOKEN_VARS), first("REPLICATE_BASE_URL")


class _Gone(Exception):
    """The prediction (or its output) can no longer be used: a new prediction is needed."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state


class _Transient(Exception):
    """A download failure worth trying again (5xx, 429, connection dropped)."""


class _NotCreated(GenerationError):
    """A create that certainly made no prediction: refused (4xx), or every try failed and no listing found one."""


@dataclass(eq=False)
class _Submission:
    """A create that was sent (or is about to be) whose prediction id is not known yet."""

    fp: str
    model: str
    input: dict[str, Any]  # JSON-normalised, as the API echoes it back
    since: float  # epoch seconds the create was sent: listings go back to here (minus Policy.list_skew)
    exclude: frozenset[str] = field(default_factory=frozenset)  # older predictions of ours with the same input
    found: tuple[str, str] | None = None  # (id, state) of the prediction cancel_all found and canceled


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
        self.policy = policy or Policy.from_env(env)
        self.journal = journal or Journal()
        self._token, self._base_url = resolve_credentials(env, dotenv_path)
        self._client_kwargs = client_kwargs
        self._client: replicate.Client | None = None
        self._http: httpx.Client | None = None  # the replicate client's own httpx client
        self._plain: httpx.Client | None = None  # for output URLs given as str: no Authorization header
        self._lock = threading.Lock()
        self._uploads: dict[str, str] = {}  # first-frame sha256 -> uploaded file URL
        self._upload_locks: dict[str, threading.Lock] = {}
        self._inflight: dict[str, str] = {}  # prediction id -> fingerprint
        self._submitting: dict[str, _Submission] = {}  # fingerprint -> create in flight (id not known yet)
        self._canceled = threading.Event()
        self._local = threading.local()  # Retry-After of the last 429 this thread saw
        self.stats: Counter[str] = Counter()

    # -- Backend protocol -------------------------------------------------------------------------
    def check(self) -> None:
        """Before any work: a token must exist and the API must accept it (one `GET /v1/account`).

        A rejected token is bad input (exit 2) rather than every scene failing one by one; an API that
        cannot be reached fails the run before anything is uploaded or paid for.
        """
        if not self._token:
            raise InputError(NO_TOKEN)
        try:
            self._api().accounts.current()
        except ReplicateError as exc:
            if exc.status in (401, 403):
                raise InputError(self._scrub(
                    f"the Replicate API rejected the token ({_api_error(exc)}): check REPLICATE_API_TOKEN "
                    "(or REPLICATE_API_KEY) in the environment or in .env")) from None
            if exc.status == 404:
                return  # a compatible server without the account endpoint: the first upload will tell
            raise GenerationError(self._scrub(f"the Replicate API is not answering: {_api_error(exc)}")) from None
        except httpx.HTTPError as exc:
            where = self._base_url or "https://api.replicate.com"
            raise GenerationError(self._scrub(f"cannot reach the Replicate API at {where}: {_describe(exc)}")) from None

    def upload(self, job: Job) -> str:
        """Upload the first frame once per distinct image (by content hash); return its URL."""
        try:
            return self._upload(job)
        except S9Error as exc:
            raise type(exc)(self._scrub(str(exc))) from None
        except Exception as exc:  # scrubbed and one line, never a raw exception text
            raise GenerationError(self._scrub(f"Could not upload image: {_describe(exc)}")) from None

    def produce(self, job: Job, api_input: dict[str, Any], dest: Path) -> None:
        """Resume the journaled prediction for this job, or create one; wait; stream its output to `dest`."""
        try:
            self._produce(job, api_input, Path(dest))
        except S9Error as exc:
            raise type(exc)(self._scrub(str(exc))) from None
        except Exception as exc:
            raise GenerationError(self._scrub(f"unexpected error: {_describe(exc)}")) from None

    def cancel_all(self) -> None:
        """Cancel every in-flight prediction through the API and wake every waiting `produce`.

        Creates still held open by ``Prefer: wait`` have no id yet: they are found by listing and canceled,
        which makes the server answer them (as canceled) at once, so their threads return promptly.
        """
        self._canceled.set()
        with self._lock:
            targets = dict(self._inflight)
            held = list(self._submitting.values())
        if self._client is None or not (targets or held):
            return
        tasks: list[Callable[[], object]] = [
            functools.partial(self._cancel_prediction, pid, fp) for pid, fp in targets.items()
        ]
        if held:
            tasks.append(functools.partial(self._cancel_held, held))
        with ThreadPoolExecutor(max_workers=min(8, len(tasks)), thread_name_prefix="s9-cancel") as pool:
            list(pool.map(lambda task: task(), tasks))

    def close(self) -> None:
        for http in (self._http, self._plain):
            if http is not None:
                http.close()
        self._http = self._plain = None

    # -- clients ----------------------------------------------------------------------------------
    def _api(self) -> replicate.Client:
        with self._lock:
            if self._client is None:
                if not self._token:
                    raise InputError(NO_TOKEN)
                kwargs = dict(self._client_kwargs)
                hooks = dict(kwargs.pop("event_hooks", {}) or {})
                hooks["response"] = [*hooks.get("response", []), self._remember_retry_after]
                client = replicate.Client(api_token=self._token, base_url=self._base_url, event_hooks=hooks, **kwargs)
                # Build the httpx client now: the client's lazy property is not thread-safe.
                self._http = client._client
                self._client = client
            return self._client

    def _plain_http(self) -> httpx.Client:
        with self._lock:
            if self._plain is None:
                self._plain = httpx.Client(timeout=httpx.Timeout(10.0, read=60.0), follow_redirects=True)
            return self._plain

    def _remember_retry_after(self, response: httpx.Response) -> None:
        # ReplicateError keeps only the JSON body, so the header is caught here, per thread.
        self._local.retry_after = response.headers.get("Retry-After") if response.status_code == 429 else None

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    # -- upload -----------------------------------------------------------------------------------
    def _upload(self, job: Job) -> str:
        key = job.frame_sha256
        with self._lock:
            if key in self._uploads:
                return self._uploads[key]
            gate = self._upload_locks.setdefault(key, threading.Lock())
        with gate:  # several scenes sharing one image wait for one upload
            with self._lock:
                if key in self._uploads:
                    return self._uploads[key]
            client = self._api()
            self._check_canceled()
            try:
                uploaded = self._with_retries("upload", lambda: client.files.create(job.first_frame))
            except GenerationError as exc:
                raise GenerationError(f"Could not upload image: {exc}") from None
            except OSError as exc:
                raise GenerationError(f"Could not upload image: {job.first_frame}: {exc.strerror or exc}") from None
            url = (uploaded.urls or {}).get("get")
            if not url:
                raise GenerationError("Could not upload image: the API returned no URL for it")
            self._count("uploads")
            with self._lock:
                self._uploads[key] = url
            return url

    # -- POST with backoff ------------------------------------------------------------------------
    def _with_retries(self, what: str, call: Callable[[], T]) -> T:
        """Run a POST that the client won't retry (an upload): back off on 429 (Retry-After) and 5xx, a
        bounded number of times. (Creates have their own loop, `_create`, which can tell a doubled create.)"""
        p = self.policy
        last: ReplicateError | Exception | None = None
        for attempt in range(1, p.attempts + 1):
            self._local.retry_after = None
            try:
                return call()
            except ReplicateError as exc:
                if not (exc.status == 429 or (exc.status or 0) >= 500):
                    raise GenerationError(_api_error(exc)) from None
                last = exc
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = exc  # the request never reached the server
            except httpx.HTTPError as exc:
                # The server may have acted on it (e.g. created the prediction): repeating could pay twice.
                raise GenerationError(f"network error during {what}: {_describe(exc)}") from None
            if attempt == p.attempts:
                break
            delay = self._backoff(attempt, last)
            self._count(f"{what}_retries")
            if isinstance(last, ReplicateError) and last.status == 429:
                self._count("rate_limited")
            if self._canceled.wait(delay):
                self._check_canceled()
        if isinstance(last, ReplicateError) and last.status == 429:
            raise GenerationError(f"Rate limit exceeded ({_api_error(last)}; gave up after {p.attempts} attempts)")
        reason = _api_error(last) if isinstance(last, ReplicateError) else _describe(last)
        raise GenerationError(f"{reason} (gave up after {p.attempts} attempts)")

    def _backoff(self, attempt: int, error: Exception | None) -> float:
        p = self.policy
        if isinstance(error, ReplicateError) and error.status == 429:
            after = _retry_after(getattr(self._local, "retry_after", None), error.detail)
            if after is not None:
                # Never earlier than asked; a little later so parallel workers don't return in lockstep.
                return min(p.backoff_max, after) * random.uniform(1.0, 1.2) + random.uniform(0.0, 0.1)
        return min(p.backoff_max, p.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)

    # -- produce ----------------------------------------------------------------------------------
    def _produce(self, job: Job, api_input: dict[str, Any], dest: Path) -> None:
        self._api()
        self._check_canceled()
        for round_ in (1, 2):
            entry, prediction = self._obtain(job, api_input)
            pid = entry.prediction_id
            try:
                output = self._wait(job, entry, prediction)
                self._download(job, pid, output, dest)
                return
            except _Gone as gone:
                self._journal_set(job.fingerprint, pid, state=gone.state, error=str(gone))
                if round_ == 2:
                    raise GenerationError(f"{gone} (even for a new prediction)") from None
                self._count("replaced")
            finally:
                with self._lock:
                    self._inflight.pop(pid, None)

    def _obtain(self, job: Job, api_input: dict[str, Any]) -> tuple[JournalEntry, Any | None]:
        """The journaled prediction for this job when it is still worth following, else a new one.

        Returns the entry and, for a new or adopted prediction, the API's view of it (so no status check is
        needed yet). The per-fingerprint lock, held through the create, makes "look up or create" atomic
        across threads and processes.
        """
        fp = job.fingerprint
        self._api()
        with self.journal.lock(fp):
            entry = self.journal.get(fp)
            exclude: set[str] = set()
            if entry is not None and entry.model == job.model.id:
                if entry.resumable:
                    self._count("resumed")
                    self._track(entry.prediction_id, fp)
                    return entry, None
                if entry.unconfirmed:  # a run died (or gave up) mid-create: did that create land?
                    found = self._recover(fp, entry)
                    if found is not None:
                        return self._adopt(fp, entry, found), found
                elif entry.prediction_id:
                    exclude.add(entry.prediction_id)  # dead, and possibly with this very input
            self._check_canceled()
            return self._submit(job, api_input, exclude)

    def _recover(self, fp: str, entry: JournalEntry) -> Any | None:
        """The prediction an unanswered create made, found by listing; None when it never landed."""
        if not isinstance(entry.input, dict):
            return None  # nothing to recognise it by (a hand-edited entry): treat as never sent
        sub = _Submission(fp, entry.model, _jsonable(entry.input), entry.submitted_epoch)
        self._count("recoveries")
        return self._find_one(sub)

    def _adopt(self, fp: str, entry: JournalEntry, prediction: Any) -> JournalEntry:
        """Record a prediction found by listing as this fingerprint's, and follow it."""
        entry = self.journal.record(fp, replace(
            entry, prediction_id=prediction.id, state=prediction.status, updated_at=time.time(),
            error=prediction.error if prediction.status == "failed" else None,
        ))
        self._count("adopted")
        self._track(prediction.id, fp, prediction.status)
        return entry

    def _submit(self, job: Job, api_input: dict[str, Any], exclude: set[str]) -> tuple[JournalEntry, Any]:
        """Journal the create, then send it; record the id the moment the answer arrives."""
        fp, model = job.fingerprint, job.model.id
        sent = _jsonable(api_input)
        now = time.time()
        # Written before the request goes out: a run killed while the create is held open leaves this, and
        # the next run finds the prediction by listing instead of paying for it again.
        entry = self.journal.record(fp, JournalEntry.submitting(model, sent, now, label=job.label))
        sub = _Submission(fp, model, sent, now, frozenset(exclude))
        with self._lock:
            self._submitting[fp] = sub
            late = self._canceled.is_set()
        try:
            if late:  # cancel_all already took its snapshot: nothing was sent, so say so
                self.journal.record(fp, replace(entry, state="rejected", error="canceled before it was sent"))
                self._check_canceled()
            try:
                prediction, adopted = self._create(job, api_input, sub, deadline=now + self.timeout)
            except _NotCreated as exc:
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
            self._count("creates")
            self._track(prediction.id, fp, prediction.status)
            return entry, prediction
        finally:
            with self._lock:  # after _track: cancel_all always sees this create in one of the two maps
                if self._submitting.get(fp) is sub:
                    del self._submitting[fp]

    def _create(self, job: Job, api_input: dict[str, Any], sub: _Submission, deadline: float) -> tuple[Any, bool]:
        """Create with ``Prefer: wait``, retrying a bounded number of times; (prediction, adopted).

        429 and connect errors mean nothing was created: back off and retry. A 5xx, a read timeout or a
        dropped connection may hide a prediction that *was* created: list, adopt it if found, else retry.
        """
        client = self._api()
        p = self.policy
        last: Exception | None = None
        for attempt in range(1, p.attempts + 1):
            self._local.retry_after = None
            # The timeout counts from the submit: never hold a create open past it, nor start one after it.
            remaining = deadline - time.time()
            if remaining <= 0:
                raise _NotCreated(f"timed out after {self.timeout:g} s before a prediction was created")
            wait = max(0, min(p.wait, int(remaining)))
            ambiguous = False
            try:
                prediction = client.models.predictions.create(model=job.model.id, input=api_input, wait=wait)
                return prediction, False
            except ReplicateError as exc:
                if exc.status != 429 and (exc.status or 0) < 500:
                    raise _NotCreated(_api_error(exc)) from None
                last, ambiguous = exc, exc.status != 429
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = exc  # the request never reached the server
            except httpx.HTTPError as exc:
                last, ambiguous = exc, True  # sent, but no answer: the server may have acted on it
            if ambiguous:
                self._count("create_ambiguous")
            elif attempt == p.attempts:
                break
            delay = self._backoff(attempt, last)
            if isinstance(last, ReplicateError) and last.status == 429:
                self._count("rate_limited")
            canceled = self._canceled.wait(delay)
            if ambiguous:
                # The pause above also lets a prediction the server did make show up in the listing. Listed
                # even after Ctrl-C: adopting it is how it gets canceled (_track) rather than left running.
                found = self._find_one(sub)
                if found is not None:
                    return found, True
            if canceled:
                self._check_canceled()
            if attempt == p.attempts:
                break
            self._count("create_retries")
        if isinstance(last, ReplicateError) and last.status == 429:
            raise _NotCreated(f"Rate limit exceeded ({_api_error(last)}; gave up after {p.attempts} attempts)")
        reason = _api_error(last) if isinstance(last, ReplicateError) else _describe(last)
        raise _NotCreated(f"{reason} (gave up after {p.attempts} attempts)")

    # -- recovery by listing ----------------------------------------------------------------------
    def _find_one(self, sub: _Submission) -> Any | None:
        """`_find` for one submission; a listing that fails is an error, never "not found" (that would pay twice)."""
        try:
            return self._find([sub]).get(sub.fp)
        except ReplicateError as exc:
            reason = _api_error(exc)
        except httpx.HTTPError as exc:
            reason = _describe(exc)
        raise GenerationError(
            f"could not tell whether a create for {sub.model} reached the API (listing predictions failed: "
            f"{reason}); not creating another -- run again to look again"
        )

    def _find(self, subs: Sequence[_Submission]) -> dict[str, Any]:
        """List predictions newest first, back to the oldest submit time minus `Policy.list_skew` (or
        `Policy.list_pages` pages), and match each submission to the prediction it made: same model, exactly
        the same input, not one of its excluded (older) ids. Returns {fingerprint: prediction}."""
        client = self._api()
        p = self.policy
        want = list(subs)
        found: dict[str, Any] = {}
        cutoff = min(s.since for s in want) - p.list_skew
        cursor: str | None = None
        gets = 0
        for _ in range(max(1, p.list_pages)):
            page = client.predictions.list() if cursor is None else client.predictions.list(cursor)
            self._count("lists")
            reached_cutoff = False
            for prediction in page.results:
                created = parse_utc(prediction.created_at)
                if created is not None and created < cutoff:
                    reached_cutoff = True  # newest first: everything after this is older still
                    break
                candidates = [
                    s for s in want
                    if prediction.model == s.model and prediction.id not in s.exclude
                    and (created is None or created >= s.since - p.list_skew)
                ]
                if not candidates:
                    continue
                inp = prediction.input
                if not inp and gets < p.list_gets:
                    # A listing may leave `input` out; the prediction itself has it (until its data is removed).
                    gets += 1
                    self._count("list_gets")
                    inp = client.predictions.get(prediction.id).input
                if not isinstance(inp, dict) or not inp:
                    continue  # can't be recognised: not adopted (its data, output included, is gone anyway)
                for sub in candidates:
                    if _canonical(inp) == _canonical(sub.input):
                        found[sub.fp] = prediction
                        want.remove(sub)
                        break
                if not want:
                    return found
            if reached_cutoff or not page.next:
                return found
            cursor = page.next
        self._count("list_truncated")  # gave up paging before reaching the submit time
        return found

    def _cancel_held(self, held: list[_Submission]) -> None:
        """Ctrl-C: find the predictions of creates still held open, and cancel them so the server answers.

        A create whose request has not reached the server yet is looked for again, for a few seconds, while
        its thread is still waiting; one that answers meanwhile is canceled by `_track` instead.
        """
        deadline = time.monotonic() + self.policy.cancel_list_seconds
        left = held
        while True:
            with self._lock:
                left = [s for s in left if self._submitting.get(s.fp) is s]  # still waiting for an answer
            if not left:
                return
            try:
                found = self._find(left)
            except (ReplicateError, httpx.HTTPError, S9Error):
                found = {}
            for sub in left:
                prediction = found.get(sub.fp)
                if prediction is not None:
                    final = self._cancel_prediction(prediction.id, sub.fp, journal=False)
                    sub.found = (prediction.id, final.status if final is not None else prediction.status)
            left = [s for s in left if s.fp not in found]
            if not left or time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def _track(self, pid: str, fp: str, status: str | None = None) -> None:
        with self._lock:
            self._inflight[pid] = fp
            late = self._canceled.is_set()
        if late:  # cancel_all ran while this prediction was being created: it must not run on unseen
            if status not in TERMINAL:
                self._cancel_prediction(pid, fp)
            self._check_canceled(pid)

    def _wait(self, job: Job, entry: JournalEntry, prediction: Any | None) -> Any:
        """Poll until the prediction ends; return its output. Intervals grow ×factor up to a cap."""
        client = self._api()
        p = self.policy
        fp, pid = job.fingerprint, entry.prediction_id
        deadline = entry.created_at + self.timeout
        interval = p.poll_initial
        state = entry.state
        errors = 0
        while True:
            if prediction is None:
                try:
                    prediction = client.predictions.get(pid)
                    self._count("polls")
                    errors = 0
                except ReplicateError as exc:
                    if exc.status in (404, 410):
                        raise _Gone("expired", f"prediction {pid} no longer exists") from None
                    if exc.status != 429 and (exc.status or 0) < 500:
                        raise GenerationError(f"could not check prediction {pid}: {_api_error(exc)}") from None
                    errors += 1
                    reason = _api_error(exc)
                except httpx.TransportError as exc:
                    errors += 1
                    reason = _describe(exc)
                if prediction is None and errors >= p.poll_errors:
                    raise GenerationError(f"could not check prediction {pid}: {reason}")
            if prediction is not None:
                status = prediction.status
                if status != state:
                    state = status
                    self._journal_set(fp, pid, state=status, error=prediction.error)
                if status == "succeeded":
                    return prediction.output
                if status == "failed":
                    # Verbatim: "The input or output was flagged as sensitive. ... (E005)" is what users search.
                    raise GenerationError(" ".join(str(prediction.error or f"prediction {pid} failed").split()))
                if status == "canceled":
                    self._check_canceled(pid)
                    raise _Gone("canceled", f"prediction {pid} was canceled elsewhere")
            self._check_canceled(pid)
            now = time.time()
            if now >= deadline:
                final = self._cancel_prediction(pid, fp)
                if final is not None and final.status == "succeeded":  # it finished as we gave up: keep it
                    prediction = final
                    continue
                raise GenerationError(f"timed out after {self.timeout:g} s; prediction {pid} was canceled")
            if self._canceled.wait(min(interval, deadline - now)):
                self._check_canceled(pid)
            interval = min(interval * p.poll_factor, p.poll_max)
            prediction = None

    def _cancel_prediction(self, pid: str, fp: str, journal: bool = True) -> Any | None:
        """Cancel through the API; journal what the server says. None when the cancel could not be sent.

        `journal=False` for a create still held open: its thread holds the journal lock and records the id.
        """
        try:
            final = self._api().predictions.cancel(pid)
        except (ReplicateError, httpx.HTTPError, S9Error):
            return None  # journal keeps it resumable: a later run follows it instead of paying again
        self._count("cancels")
        if journal:
            self._journal_set(fp, pid, state=final.status, error=final.error)
        return final

    def _check_canceled(self, pid: str | None = None) -> None:
        if self._canceled.is_set():
            what = f"; prediction {pid} was canceled" if pid else ""
            raise GenerationError(f"canceled (interrupted){what}")

    def _journal_set(self, fp: str, pid: str, **changes: Any) -> None:
        # Only touch the entry if it still describes this prediction (another run may have replaced it).
        with self.journal.lock(fp):
            entry = self.journal.get(fp)
            if entry is not None and entry.prediction_id == pid:
                self.journal.update(fp, **changes)

    # -- download ---------------------------------------------------------------------------------
    def _download(self, job: Job, pid: str, output: Any, dest: Path) -> None:
        item = self._single_output(pid, output)
        url = item if isinstance(item, str) else item.url if isinstance(item, FileOutput) else None
        if url is not None and urlsplit(url).scheme.lower() not in ("http", "https"):
            raise GenerationError(f"prediction {pid}: refusing to download output {_short(url)!r}: not an http(s) URL")
        p = self.policy
        for attempt in range(1, p.download_attempts + 1):
            self._check_canceled()
            try:
                size = self._fetch(item, dest)
            except _Transient as exc:
                if attempt == p.download_attempts:
                    raise GenerationError(
                        f"could not download the clip of prediction {pid}: {exc} (after {attempt} attempts)"
                    ) from None
                if self._canceled.wait(min(p.backoff_max, p.backoff_base * attempt) * random.uniform(0.5, 1.0)):
                    self._check_canceled()
                continue
            form = "fileoutput" if isinstance(item, FileOutput) else "url" if isinstance(item, str) else "chunks"
            self._count("downloads")
            self._count(f"downloads_{form}")  # which output form the client gave us
            self._count("bytes", size)
            if url is not None:
                self._journal_set(job.fingerprint, pid, state="succeeded", output_url=url)
            return

    def _single_output(self, pid: str, output: Any) -> FileOutput | str | list[bytes]:
        """The one clip in whatever form the output takes: a URL (FileOutput over https, like replicate.run()
        gives, else str), or a list/iterator of URLs or byte chunks."""
        value = transform_output(output, self._api())
        if isinstance(value, FileOutput | str):
            return value
        if isinstance(value, bytes | bytearray):
            return [bytes(value)]
        if isinstance(value, Iterable) and not isinstance(value, Mapping):
            items = list(value)
            if items and all(isinstance(i, bytes | bytearray) for i in items):
                return [bytes(i) for i in items]
            urls = [i for i in items if isinstance(i, FileOutput | str)]
            if urls:
                return urls[0]  # a video model returns one clip; a list of one is common
        raise GenerationError(f"prediction {pid} succeeded but its output is not a video URL: {_short(repr(output))}")

    def _fetch(self, item: FileOutput | str | list[bytes], dest: Path) -> int:
        """Stream one output to `dest` (truncating it); bytes written. Raises _Gone / _Transient."""
        written = 0
        with dest.open("wb") as out:
            try:
                if isinstance(item, list):
                    for chunk in item:
                        written += _write(out, chunk)
                elif isinstance(item, FileOutput):
                    for chunk in item:  # the official client's streaming GET
                        self._check_canceled()
                        written += _write(out, chunk)
                else:
                    with self._plain_http().stream("GET", item) as response:
                        response.raise_for_status()
                        for chunk in response.iter_bytes():
                            self._check_canceled()
                            written += _write(out, chunk)
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status in (404, 410):
                    raise _Gone("expired", f"the output has expired (HTTP {status})") from None
                if status == 429 or status >= 500:
                    raise _Transient(f"HTTP {status}") from None
                raise GenerationError(f"downloading the clip failed: HTTP {status}") from None
            except httpx.TransportError as exc:
                raise _Transient(_describe(exc)) from None
        return written

    # -- hygiene ----------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Remove the token from text we are about to show, however it got there."""
        if self._token and len(self._token) >= 4:
            text = text.replace(self._token, REDACTED)
        return re.sub(r"(?i)\b(bearer|token)\s+[A-Za-z0-9_\-.]{8,}", rf"\1 {REDACTED}", text)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """A copy as it looks after a JSON round trip (tuples become lists...): how the API echoes an input."""
    return json.loads(json.dumps(value))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _write(out: BinaryIO, chunk: bytes) -> int:
    out.write(chunk)
    return len(chunk)


def _retry_after(header: str | None, detail: str | None) -> float | None:
    """Seconds from a Retry-After header, else from the API's "Expected available in N seconds" text."""
    if header and header.strip().isdigit():
        return float(header.strip())
    match = re.search(r"available in (\d+(?:\.\d+)?) second", detail or "")
    return float(match.group(1)) if match else None


def _api_error(exc: ReplicateError) -> str:
    """One line from an API error: its detail (a 422's field list joined with ';'), title and status."""
    lines = [line.strip().lstrip("-").strip() for line in (exc.detail or "").splitlines()]
    text = "; ".join(line for line in lines if line) or exc.title or "API error"
    return f"{text} (HTTP {exc.status})" if exc.status else text


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
