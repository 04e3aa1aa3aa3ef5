"""Finding a prediction whose create was sent but whose answer never arrived, by listing recent predictions.

The API has no idempotency key: a create that died mid-request (kill -9, a 5xx from a gateway, a dropped
connection) may or may not have made a prediction, and only the listing can tell. The listing asks only for
predictions created after the submit time (minus a margin for clock skew: ``created_after``) rather than paging
back through history. A prediction is ours when it has our model and exactly the input we journaled (the
upload URL in it makes it unique). When even the journal entry is unreadable, the job itself describes the
input -- all but the upload URLs, whose files are recognised by their checksums instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from replicate.exceptions import ReplicateError

from ...errors import GenerationError, S9Error
from ...journal import parse_utc, utc_iso
from .client import Pred, Session, api_error, describe


@dataclass(eq=False)
class Submission:
    """A create that was sent (or is about to be) whose prediction id is not known yet."""

    fp: str
    model: str
    input: dict[str, Any]  # JSON-normalised, as the API echoes it back
    since: float  # epoch seconds the create was sent: listings go back to here (minus Policy.list_skew)
    exclude: frozenset[str] = field(default_factory=frozenset)  # older predictions of ours with the same input
    found: tuple[str, str] | None = None  # (id, state) of the prediction cancel_all found and canceled


@dataclass(frozen=True)
class Pattern:
    """A job's input with its images left open: `images` maps each image field to the sha256 of its file."""

    model: str
    input: dict[str, Any]  # with placeholders where the image URLs go
    images: dict[str, str]


class Finder:
    """Listing-based recovery for one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find_one(self, sub: Submission) -> Pred | None:
        """`find` for one submission; a listing that fails is an error, never "not found" (that would pay twice)."""
        try:
            return self.find([sub]).get(sub.fp)
        except (ReplicateError, httpx.HTTPError, ValueError) as exc:
            reason = api_error(exc) if isinstance(exc, ReplicateError) else describe(exc)
        raise GenerationError(
            f"could not tell whether a create for {sub.model} reached the API (listing predictions failed: "
            f"{reason}); not creating another -- run again to look again"
        )

    def find(self, subs: Sequence[Submission]) -> dict[str, Pred]:
        """Match each submission to the prediction it made: same model, exactly the same input, not one of its
        excluded (older) ids, created since its submit time. Returns {fingerprint: prediction}."""
        p = self.session.policy
        want = list(subs)
        found: dict[str, Pred] = {}
        for prediction, inp in self._listed(min(sub.since for sub in want) - p.list_skew,
                                            lambda pred: any(self._could_be(pred, sub) for sub in want)):
            for sub in [sub for sub in want if self._could_be(prediction, sub)]:
                if canonical(inp) == canonical(sub.input):
                    found[sub.fp] = prediction
                    want.remove(sub)
                    break
            if not want:
                break
        return found

    def find_job(self, pattern: Pattern, since: float) -> Pred | None:
        """The newest prediction since `since` made for a job whose journal entry is lost: same model, same input
        but for the image URLs, and those images' files have the job's checksums."""
        for prediction, inp in self._listed(since, lambda pred: pred.model == pattern.model):
            opened = {**inp, **{k: pattern.input.get(k) for k in pattern.images if k in inp}}
            if canonical(opened) != canonical(pattern.input):
                continue
            if all(self._file_sha256(inp.get(k)) == sha for k, sha in pattern.images.items()):
                return prediction
        return None

    def _could_be(self, prediction: Pred, sub: Submission) -> bool:
        created = parse_utc(prediction.created_at)
        return (prediction.model == sub.model and prediction.id not in sub.exclude
                and (created is None or created >= sub.since - self.session.policy.list_skew))

    def _listed(self, since: float, wanted: Callable[[Pred], bool]):  # noqa: ANN202 - a generator of pairs
        """(prediction, its input) for each listed prediction created after `since` that `wanted` accepts,
        newest first; at most `Policy.list_pages` pages."""
        s = self.session
        p = s.policy
        url: str | None = f"/v1/predictions?created_after={quote(utc_iso(since))}"
        gets = 0
        for _ in range(max(1, p.list_pages)):
            page = s.get_json(url)
            s.count("lists")
            older = False
            for item in page.get("results") or []:
                prediction = Pred.from_json(item)
                created = parse_utc(prediction.created_at)
                if created is not None and created < since:
                    older = True  # a server that ignores the filter: newest first, so the rest is older still
                    break
                if not wanted(prediction):
                    continue
                inp = prediction.input
                if not inp and gets < p.list_gets:
                    # A listing may leave `input` out; the prediction itself has it (until its data is removed).
                    gets += 1
                    s.count("list_gets")
                    inp = Pred.from_json(s.get_json(f"/v1/predictions/{prediction.id}")).input
                if isinstance(inp, dict) and inp:  # else unrecognisable: its data, output included, is gone
                    yield prediction, inp
            url = page.get("next")
            if older or not url:
                return
        s.count("list_truncated")  # gave up paging before the listing ended

    def _file_sha256(self, url: Any) -> str | None:
        """The sha256 of an uploaded image, from the files API (or a data: URL's bytes); None when unknown."""
        if not isinstance(url, str):
            return None
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            try:
                return hashlib.sha256(base64.b64decode(payload)).hexdigest() if header.endswith(";base64") else None
            except ValueError:
                return None
        match = re.fullmatch(r"/v1/files/([^/]+)(?:/download)?", urlsplit(url).path)
        if match is None:
            return None
        try:
            data = self.session.get_json(f"/v1/files/{match.group(1)}")
        except (ReplicateError, httpx.HTTPError, ValueError):
            return None  # gone (files expire after a day) or unreadable: cannot be recognised
        checksums = data.get("checksums") if isinstance(data, dict) else None
        return checksums.get("sha256") if isinstance(checksums, dict) else None

    def cancel_held(
        self,
        held: list[Submission],
        still_waiting: Callable[[Submission], bool],
        cancel: Callable[[str, str], Pred | None],
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
            except (ReplicateError, httpx.HTTPError, ValueError, S9Error):
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
