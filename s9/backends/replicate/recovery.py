"""Finding a prediction whose create was sent but whose answer never arrived, by listing recent predictions.

The API has no idempotency key: a create that died mid-request (kill -9, a 5xx from a gateway, a dropped
connection) may or may not have made a prediction, and only the listing can tell. A prediction is ours when it
has our model and exactly the input we journaled (the upload URL in it makes it unique).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from replicate.exceptions import ReplicateError

from ...errors import GenerationError, S9Error
from ...journal import parse_utc
from .client import Session, api_error, describe


@dataclass(eq=False)
class Submission:
    """A create that was sent (or is about to be) whose prediction id is not known yet."""

    fp: str
    model: str
    input: dict[str, Any]  # JSON-normalised, as the API echoes it back
    since: float  # epoch seconds the create was sent: listings go back to here (minus Policy.list_skew)
    exclude: frozenset[str] = field(default_factory=frozenset)  # older predictions of ours with the same input
    found: tuple[str, str] | None = None  # (id, state) of the prediction cancel_all found and canceled


class Finder:
    """Listing-based recovery for one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find_one(self, sub: Submission) -> Any | None:
        """`find` for one submission; a listing that fails is an error, never "not found" (that would pay twice)."""
        try:
            return self.find([sub]).get(sub.fp)
        except ReplicateError as exc:
            reason = api_error(exc)
        except httpx.HTTPError as exc:
            reason = describe(exc)
        raise GenerationError(
            f"could not tell whether a create for {sub.model} reached the API (listing predictions failed: "
            f"{reason}); not creating another -- run again to look again"
        )

    def find(self, subs: Sequence[Submission]) -> dict[str, Any]:
        """List predictions newest first, back to the oldest submit time minus `Policy.list_skew` (or
        `Policy.list_pages` pages), and match each submission to the prediction it made: same model, exactly
        the same input, not one of its excluded (older) ids. Returns {fingerprint: prediction}."""
        s = self.session
        client = s.api()
        p = s.policy
        want = list(subs)
        found: dict[str, Any] = {}
        cutoff = min(sub.since for sub in want) - p.list_skew
        cursor: str | None = None
        gets = 0
        for _ in range(max(1, p.list_pages)):
            page = client.predictions.list() if cursor is None else client.predictions.list(cursor)
            s.count("lists")
            reached_cutoff = False
            for prediction in page.results:
                created = parse_utc(prediction.created_at)
                if created is not None and created < cutoff:
                    reached_cutoff = True  # newest first: everything after this is older still
                    break
                candidates = [
                    sub for sub in want
                    if prediction.model == sub.model and prediction.id not in sub.exclude
                    and (created is None or created >= sub.since - p.list_skew)
                ]
                if not candidates:
                    continue
                inp = prediction.input
                if not inp and gets < p.list_gets:
                    # A listing may leave `input` out; the prediction itself has it (until its data is removed).
                    gets += 1
                    s.count("list_gets")
                    inp = client.predictions.get(prediction.id).input
                if not isinstance(inp, dict) or not inp:
                    continue  # can't be recognised: not adopted (its data, output included, is gone anyway)
                for sub in candidates:
                    if canonical(inp) == canonical(sub.input):
                        found[sub.fp] = prediction
                        want.remove(sub)
                        break
                if not want:
                    return found
            if reached_cutoff or not page.next:
                return found
            cursor = page.next
        s.count("list_truncated")  # gave up paging before reaching the submit time
        return found

    def cancel_held(
        self,
        held: list[Submission],
        still_waiting: Callable[[Submission], bool],
        cancel: Callable[[str, str], Any | None],
    ) -> None:
        """Ctrl-C: find the predictions of creates still held open, and cancel them so the server answers.

        A create whose request has not reached the server yet is looked for again, for a few seconds, while
        its thread is still waiting; one that answers meanwhile is canceled by the backend's tracking instead.
        `cancel(id, fingerprint)` cancels without journaling (the create's own thread records the id).
        """
        deadline = time.monotonic() + self.session.policy.cancel_list_seconds
        left = held
        while True:
            left = [sub for sub in left if still_waiting(sub)]
            if not left:
                return
            try:
                found = self.find(left)
            except (ReplicateError, httpx.HTTPError, S9Error):
                found = {}
            for sub in left:
                prediction = found.get(sub.fp)
                if prediction is not None:
                    final = cancel(prediction.id, sub.fp)
                    sub.found = (prediction.id, final.status if final is not None else prediction.status)
            left = [sub for sub in left if sub.fp not in found]
            if not left or time.monotonic() >= deadline:
                return
            time.sleep(0.1)


def jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """A copy as it looks after a JSON round trip (tuples become lists...): how the API echoes an input."""
    return json.loads(json.dumps(value))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
