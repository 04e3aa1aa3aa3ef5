"""Creating a prediction (with backoff and a server-side deadline, never twice), waiting for it, canceling it.

Every create carries ``Cancel-After`` (the time left of `prediction_timeout_seconds`): a prediction left behind
by a crashed or killed run is ended by the server at that deadline -- ``aborted`` if it never started (not
charged), ``canceled`` if it was running -- so nobody pays for a prediction nobody waits for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import httpx
from replicate.exceptions import ReplicateError

from ...errors import GenerationError, S9Error
from ...job import Job
from ...journal import Journal, JournalEntry
from .client import Gone, NotCreated, Pred, Session, api_error, describe
from .recovery import Finder, Submission
from .schemas import gone_message, is_deprecation

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})


def cancel_after(remaining: float) -> str:
    """The ``Cancel-After`` value for `remaining` seconds: whole seconds, at least one (``90s``)."""
    return f"{max(1, math.ceil(remaining))}s"


class Predictions:
    def __init__(self, session: Session, journal: Journal, finder: Finder, timeout: float) -> None:
        self.session = session
        self.journal = journal
        self.finder = finder
        self.timeout = timeout

    def create(self, job: Job, api_input: dict[str, Any], sub: Submission, deadline: float) -> tuple[Pred, bool]:
        """Create with ``Prefer: wait`` and ``Cancel-After``, paced to the account's create limit and retried a
        bounded number of times; (prediction, adopted).

        A 429 means nothing was created: the create bucket is paused for its Retry-After (every thread waits)
        and the create is sent again when the bucket lets it, for as long as the scene's timeout allows -- a
        throttled batch is slowed down, never failed. Connect errors mean nothing was created either: back off
        and retry. A 5xx, a read timeout or a dropped connection may hide a prediction that *was* created:
        list, adopt it if found, else retry.
        """
        s = self.session
        p = s.policy
        owner, name = job.model.id.split("/", 1)
        last: Exception | None = None
        attempt = throttled = 0
        while True:
            # The timeout counts from the submit: never hold a create open past it, nor start one after it, and
            # tell the server the same deadline, so it ends the prediction even if this process is gone by then.
            # Our turn comes under the account's create limit; Ctrl-C while waiting: this create is never sent.
            remaining = deadline - time.time()
            if remaining <= 0 or not s.creates.acquire(s.canceled, timeout=remaining):
                s.check_canceled_create()
                held = f" (throttled {throttled} time(s): the account's create limit)" if throttled else ""
                raise NotCreated(f"timed out after {self.timeout:g} s before a prediction was created{held}")
            remaining = deadline - time.time()
            s.local.retry_after = None
            wait = max(0, min(p.wait, int(remaining)))
            headers = {"Cancel-After": cancel_after(remaining)}
            if wait:
                headers["Prefer"] = f"wait={wait}"
            ambiguous = False
            try:
                data = s.post_json(f"/v1/models/{owner}/{name}/predictions", {"input": api_input}, headers,
                                   httpx.Timeout(5.0, read=wait + 5.0) if wait else None)
                s.count("cancel_after_sent")
                s.creates.succeeded()
                return Pred.from_json(data), False
            except ReplicateError as exc:
                if exc.status == 429:
                    # Not a failed try: the response hook paused the create bucket for everyone.
                    throttled += 1
                    s.count("rate_limited")
                    last = exc
                    continue
                if (exc.status or 0) < 500:
                    if is_deprecation(exc):  # the model went away since the preflight
                        raise NotCreated(gone_message(job.model, api_error(exc))) from None
                    raise NotCreated(api_error(exc)) from None
                last, ambiguous = exc, True
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = exc  # the request never reached the server
            except (httpx.HTTPError, ValueError) as exc:
                last, ambiguous = exc, True  # sent, but no (usable) answer: the server may have acted on it
            attempt += 1
            if ambiguous:
                s.count("create_ambiguous")
            elif attempt >= p.attempts:
                break
            canceled = s.canceled.wait(s.backoff(attempt, last))
            if ambiguous:
                # The pause above also lets a prediction the server did make show up in the listing. Listed
                # even after Ctrl-C: adopting it is how it gets canceled (tracking) rather than left running.
                found = self.finder.find_one(sub)
                if found is not None:
                    return found, True
            if canceled:
                s.check_canceled()
            if attempt >= p.attempts:
                break
            s.count("create_retries")
        reason = api_error(last) if isinstance(last, ReplicateError) else describe(last)
        raise NotCreated(f"{reason} (gave up after {p.attempts} attempts)")

    def get(self, pid: str) -> Pred:
        return Pred.from_json(self.session.get_json(f"/v1/predictions/{pid}"))

    def wait(self, job: Job, entry: JournalEntry, prediction: Pred | None,
             on_status: Callable[[str], None] | None = None) -> Pred:
        """Poll until the prediction ends; return it once it succeeded. Intervals grow ×factor up to a cap.
        `on_status` hears each new status (for showing progress only)."""
        s = self.session
        p = s.policy
        fp, pid = job.fingerprint, entry.prediction_id
        deadline = entry.created_at + self.timeout
        interval = p.poll_initial
        state = entry.state
        errors = 0
        while True:
            if prediction is None:
                try:
                    prediction = self.get(pid)
                    s.count("polls")
                    errors = 0
                except ReplicateError as exc:
                    if exc.status in (404, 410):
                        raise Gone("expired", f"prediction {pid} no longer exists") from None
                    if exc.status != 429 and (exc.status or 0) < 500:
                        raise GenerationError(f"could not check prediction {pid}: {api_error(exc)}") from None
                    errors += 1
                    reason = api_error(exc)
                except (httpx.TransportError, ValueError) as exc:
                    errors += 1
                    reason = describe(exc)
                if prediction is None and errors >= p.poll_errors:
                    raise GenerationError(f"could not check prediction {pid}: {reason}")
            if prediction is not None:
                status = prediction.status
                if status != state:
                    state = status
                    self.journal_set(fp, pid, state=status, error=prediction.error)
                    if on_status is not None:
                        on_status(status)
                if status == "succeeded":
                    if prediction.data_removed or prediction.output is None:
                        raise Gone("expired", f"prediction {pid} succeeded but its output has been removed")
                    return prediction
                if status == "failed":
                    # Verbatim: "The input or output was flagged as sensitive. ... (E005)" is what users search.
                    raise GenerationError(" ".join(str(prediction.error or f"prediction {pid} failed").split()))
                if status == "aborted":
                    # Its Cancel-After deadline passed before it started: not charged, nothing to wait for.
                    raise Gone("aborted", f"prediction {pid} reached its deadline before it started (aborted)")
                if status == "canceled":
                    s.check_canceled(pid)
                    raise Gone("canceled", f"prediction {pid} was canceled elsewhere")
            s.check_canceled(pid)
            now = time.time()
            if now >= deadline:
                final = self.cancel(pid, fp)
                if final is not None and final.status == "succeeded":  # it finished as we gave up: keep it
                    prediction = final
                    continue
                raise GenerationError(f"timed out after {self.timeout:g} s; prediction {pid} was canceled")
            if s.canceled.wait(min(interval, deadline - now)):
                s.check_canceled(pid)
            interval = min(interval * p.poll_factor, p.poll_max)
            prediction = None

    def cancel(self, pid: str, fp: str, journal: bool = True) -> Pred | None:
        """Cancel through the API; journal what the server says. None when the cancel could not be sent.

        `journal=False` for a create still held open: its thread holds the journal lock and records the id.
        """
        try:
            final = Pred.from_json(self.session.post_json(f"/v1/predictions/{pid}/cancel"))
        except (ReplicateError, httpx.HTTPError, ValueError, S9Error):
            return None  # journal keeps it resumable: a later run follows it instead of paying again
        self.session.count("cancels")
        if journal:
            self.journal_set(fp, pid, state=final.status, error=final.error)
        return final

    def journal_set(self, fp: str, pid: str, **changes: Any) -> None:
        # Only touch the entry if it still describes this prediction (another run may have replaced it).
        with self.journal.lock(fp):
            entry = self.journal.get(fp)
            if entry is not None and entry.prediction_id == pid:
                self.journal.update(fp, **changes)
