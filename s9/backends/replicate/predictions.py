"""Creating a prediction (with backoff, never twice), waiting for it, and canceling it through the API."""

from __future__ import annotations

import time
from typing import Any

import httpx
from replicate.exceptions import ReplicateError

from ...errors import GenerationError, S9Error
from ...job import Job
from ...journal import Journal, JournalEntry
from .client import Gone, NotCreated, Session, api_error, describe
from .recovery import Finder, Submission

TERMINAL = frozenset({"succeeded", "failed", "canceled"})


class Predictions:
    def __init__(self, session: Session, journal: Journal, finder: Finder, timeout: float) -> None:
        self.session = session
        self.journal = journal
        self.finder = finder
        self.timeout = timeout

    def create(self, job: Job, api_input: dict[str, Any], sub: Submission, deadline: float) -> tuple[Any, bool]:
        """Create with ``Prefer: wait``, retrying a bounded number of times; (prediction, adopted).

        429 and connect errors mean nothing was created: back off and retry. A 5xx, a read timeout or a
        dropped connection may hide a prediction that *was* created: list, adopt it if found, else retry.
        """
        s = self.session
        client = s.api()
        p = s.policy
        last: Exception | None = None
        for attempt in range(1, p.attempts + 1):
            s.local.retry_after = None
            # The timeout counts from the submit: never hold a create open past it, nor start one after it.
            remaining = deadline - time.time()
            if remaining <= 0:
                raise NotCreated(f"timed out after {self.timeout:g} s before a prediction was created")
            wait = max(0, min(p.wait, int(remaining)))
            ambiguous = False
            try:
                prediction = client.models.predictions.create(model=job.model.id, input=api_input, wait=wait)
                return prediction, False
            except ReplicateError as exc:
                if exc.status != 429 and (exc.status or 0) < 500:
                    raise NotCreated(api_error(exc)) from None
                last, ambiguous = exc, exc.status != 429
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = exc  # the request never reached the server
            except httpx.HTTPError as exc:
                last, ambiguous = exc, True  # sent, but no answer: the server may have acted on it
            if ambiguous:
                s.count("create_ambiguous")
            elif attempt == p.attempts:
                break
            delay = s.backoff(attempt, last)
            if isinstance(last, ReplicateError) and last.status == 429:
                s.count("rate_limited")
            canceled = s.canceled.wait(delay)
            if ambiguous:
                # The pause above also lets a prediction the server did make show up in the listing. Listed
                # even after Ctrl-C: adopting it is how it gets canceled (tracking) rather than left running.
                found = self.finder.find_one(sub)
                if found is not None:
                    return found, True
            if canceled:
                s.check_canceled()
            if attempt == p.attempts:
                break
            s.count("create_retries")
        if isinstance(last, ReplicateError) and last.status == 429:
            raise NotCreated(f"Rate limit exceeded ({api_error(last)}; gave up after {p.attempts} attempts)")
        reason = api_error(last) if isinstance(last, ReplicateError) else describe(last)
        raise NotCreated(f"{reason} (gave up after {p.attempts} attempts)")

    def wait(self, job: Job, entry: JournalEntry, prediction: Any | None) -> Any:
        """Poll until the prediction ends; return its output. Intervals grow ×factor up to a cap."""
        s = self.session
        client = s.api()
        p = s.policy
        fp, pid = job.fingerprint, entry.prediction_id
        deadline = entry.created_at + self.timeout
        interval = p.poll_initial
        state = entry.state
        errors = 0
        while True:
            if prediction is None:
                try:
                    prediction = client.predictions.get(pid)
                    s.count("polls")
                    errors = 0
                except ReplicateError as exc:
                    if exc.status in (404, 410):
                        raise Gone("expired", f"prediction {pid} no longer exists") from None
                    if exc.status != 429 and (exc.status or 0) < 500:
                        raise GenerationError(f"could not check prediction {pid}: {api_error(exc)}") from None
                    errors += 1
                    reason = api_error(exc)
                except httpx.TransportError as exc:
                    errors += 1
                    reason = describe(exc)
                if prediction is None and errors >= p.poll_errors:
                    raise GenerationError(f"could not check prediction {pid}: {reason}")
            if prediction is not None:
                status = prediction.status
                if status != state:
                    state = status
                    self.journal_set(fp, pid, state=status, error=prediction.error)
                if status == "succeeded":
                    return prediction.output
                if status == "failed":
                    # Verbatim: "The input or output was flagged as sensitive. ... (E005)" is what users search.
                    raise GenerationError(" ".join(str(prediction.error or f"prediction {pid} failed").split()))
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

    def cancel(self, pid: str, fp: str, journal: bool = True) -> Any | None:
        """Cancel through the API; journal what the server says. None when the cancel could not be sent.

        `journal=False` for a create still held open: its thread holds the journal lock and records the id.
        """
        try:
            final = self.session.api().predictions.cancel(pid)
        except (ReplicateError, httpx.HTTPError, S9Error):
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
