"""Credentials, the shared `replicate.Client`, the retry policy, and keeping the token out of every message.

`Session` is what the backend's parts share: one client per run (built lazily, thread-safe), the Ctrl-C event,
request counters, and `scrub` for anything about to be shown to a person.

Predictions are read as JSON through the client's own request method (its auth, base URL and GET retries),
into `Pred`, not the client's `Prediction` model: replicate 1.0.x validates `status` against the list it
knows, and a prediction a `Cancel-After` deadline ended is ``aborted`` -- which that model cannot even hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import replicate
from dotenv import dotenv_values
from replicate.exceptions import ReplicateError

from ...errors import GenerationError, InputError
from .pacing import Pacer

TOKEN_VARS = ("REPLICATE_API_TOKEN", "REPLICATE_API_KEY")
NO_TOKEN = "no Replicate API token: set REPLICATE_API_TOKEN (or REPLICATE_API_KEY) in the environment or in .env"
BAD_TOKEN = (
    "the Replicate API token is malformed: it must be printable ASCII with no spaces or line breaks (its value "
    "is not shown); set REPLICATE_API_TOKEN (or REPLICATE_API_KEY) again in the environment or in .env"
)
REDACTED = "[redacted]"
UNPOOLED = httpx.Limits(max_connections=None, max_keepalive_connections=None)
DEFAULT_RETRY_AFTER = 1.0  # a 429 that says nothing about when to come back

T = TypeVar("T")


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
    output_ttl: float = 3600.0  # the API deletes a prediction's output this long after it ends
    schema_ttl: float = 86400.0  # a fetched model schema is used this long before it is fetched again
    # The account's rate limits (Replicate: 600 creates and 3000 other requests a minute, short bursts allowed).
    # s9 paces itself under them so a big batch gets no avoidable 429; the bursts are kept below what the API
    # tolerates, so network jitter does not push a paced send over. A 429 still pauses everything for its
    # Retry-After and is retried, never counted as a failed try (bounded by the scene's timeout).
    creates_per_minute: float = 600.0  # S9_REPLICATE_CREATES_PER_MINUTE
    create_burst: int = 5  # S9_REPLICATE_CREATE_BURST
    requests_per_minute: float = 3000.0  # S9_REPLICATE_REQUESTS_PER_MINUTE: uploads, polls, listings, ...
    request_burst: int = 25
    throttle_patience: float = 1800.0  # how long an upload keeps being retried while throttled

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Policy:
        env = os.environ if env is None else env
        changes: dict[str, Any] = {}
        try:
            initial = float(env.get("REPLICATE_POLL_INTERVAL", ""))
            if initial > 0:
                changes["poll_initial"] = initial
        except ValueError:
            pass
        for var, name, kind in RATE_VARS:
            text = (env.get(var) or "").strip()
            if not text:
                continue
            try:
                value = kind(text)
            except ValueError:
                value = 0
            if not value > 0:
                raise InputError(f"{var}={text[:20]!r}: must be a number > 0 (the account's limit; Replicate's "
                                 "defaults are 600 creates and 3000 other requests a minute)")
            changes[name] = value
        return cls(**changes)


RATE_VARS: tuple[tuple[str, str, type], ...] = (
    ("S9_REPLICATE_CREATES_PER_MINUTE", "creates_per_minute", float),
    ("S9_REPLICATE_CREATE_BURST", "create_burst", int),
    ("S9_REPLICATE_REQUESTS_PER_MINUTE", "requests_per_minute", float),
)


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


def token_is_well_formed(token: str) -> bool:
    """Printable ASCII, no whitespace: anything else cannot be a Replicate token, and would end up in an HTTP
    header (a newline splits it; a non-ASCII character makes httpx raise an error that quotes it)."""
    return bool(token) and all(33 <= ord(c) <= 126 for c in token)


@dataclass(frozen=True)
class Pred:
    """A prediction as the API returned it, whatever its status (``aborted`` included)."""

    id: str
    model: str | None
    status: str
    input: dict[str, Any] | None = None
    output: Any = None
    error: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    deadline: str | None = None
    data_removed: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Pred:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError("the API answered with something that is not a prediction")
        error = data.get("error")
        return cls(
            id=data["id"], model=data.get("model"), status=str(data.get("status") or "unknown"),
            input=data.get("input") if isinstance(data.get("input"), dict) else None,
            output=data.get("output"), error=None if error is None else str(error),
            created_at=data.get("created_at"), completed_at=data.get("completed_at"), deadline=data.get("deadline"),
            data_removed=bool(data.get("data_removed")),
            metrics=data.get("metrics") if isinstance(data.get("metrics"), dict) else {},
        )


class Gone(Exception):
    """The prediction (or its output) can no longer be used: a new prediction is needed."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state


class Transient(Exception):
    """A download failure worth trying again (5xx, 429, connection dropped)."""


class NotCreated(GenerationError):
    """A create that certainly made no prediction: refused (4xx), or every try failed and no listing found one."""


class Session:
    """What the backend's parts share for one run. Thread-safe."""

    def __init__(
        self,
        token: str | None,
        base_url: str | None,
        policy: Policy,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.token = token
        self.base_url = base_url
        self.policy = policy
        self._client_kwargs = dict(client_kwargs or {})
        self._client: replicate.Client | None = None
        self._http: httpx.Client | None = None  # the replicate client's own httpx client
        self._plain: httpx.Client | None = None  # for output URLs given as str: no Authorization header
        self.lock = threading.Lock()
        self.canceled = threading.Event()
        self.local = threading.local()  # Retry-After of the last 429 this thread saw
        self.stats: Counter[str] = Counter()
        # Shared by every thread of the run: creates have their own limit, everything else sent to the API one.
        self.creates = Pacer(policy.creates_per_minute, policy.create_burst)
        self.requests = Pacer(policy.requests_per_minute, policy.request_burst)

    # -- clients ----------------------------------------------------------------------------------
    def api(self) -> replicate.Client:
        with self.lock:
            if self._client is None:
                self._check_token_shape()
                kwargs = dict(self._client_kwargs)
                hooks = dict(kwargs.pop("event_hooks", {}) or {})
                hooks["request"] = [*hooks.get("request", []), self._pace]
                hooks["response"] = [*hooks.get("response", []), self._remember_retry_after]
                # One connection per scene in flight: httpx's default pool (100) would make the 101st held
                # create wait for a connection and time out as if the API were unreachable.
                kwargs.setdefault("transport", httpx.HTTPTransport(limits=UNPOOLED))
                client = replicate.Client(api_token=self.token, base_url=self.base_url, event_hooks=hooks, **kwargs)
                # Build the httpx client now: the client's lazy property is not thread-safe.
                self._http = client._client
                self._client = client
            return self._client

    def _check_token_shape(self) -> None:
        if not self.token:
            raise InputError(NO_TOKEN)
        if not token_is_well_formed(self.token):
            raise InputError(BAD_TOKEN)

    def get_json(self, path: str) -> Any:
        """GET through the client (auth, base URL, its retries on 429/503/504); the decoded JSON."""
        return self.api()._request("GET", path).json()

    def post_json(self, path: str, body: Any = None, headers: Mapping[str, str] | None = None,
                  timeout: httpx.Timeout | None = None) -> Any:
        """POST through the client (never retried by it); the decoded JSON."""
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if body is not None:
            kwargs["json"] = body
        if timeout is not None:
            kwargs["timeout"] = timeout
        return self.api()._request("POST", path, **kwargs).json()

    @property
    def started(self) -> bool:
        """Whether a client exists (so there may be something in flight to cancel)."""
        return self._client is not None

    def plain_http(self) -> httpx.Client:
        with self.lock:
            if self._plain is None:
                self._plain = httpx.Client(timeout=httpx.Timeout(10.0, read=60.0), follow_redirects=True,
                                           limits=UNPOOLED)
            return self._plain

    def close(self) -> None:
        for http in (self._http, self._plain):
            if http is not None:
                http.close()
        self._http = self._plain = None

    def _pace(self, request: httpx.Request) -> None:
        """Before every request to the API (an httpx request hook): wait for the request bucket. Creates wait
        for theirs in `Predictions.create`, where a create canceled while waiting can be told apart; after
        Ctrl-C nothing waits, so the cancels go out at once."""
        if self.canceled.is_set() or is_create(request):
            return
        self.requests.acquire(self.canceled)

    def _remember_retry_after(self, response: httpx.Response) -> None:
        # ReplicateError keeps only the JSON body, so the header is caught here, per thread.
        if response.status_code != 429:
            self.local.retry_after = None
            return
        header = response.headers.get("Retry-After")
        self.local.retry_after = header
        detail = None
        if header is None:
            with contextlib.suppress(Exception):  # the body says "resets in ~30s" on the real API
                response.read()
                detail = str(response.json().get("detail") or "")
        wait = retry_after(header, detail)
        # Everybody waits, not only the thread that was told: the limit is the account's.
        bucket = self.creates if is_create(response.request) else self.requests
        bucket.pause(DEFAULT_RETRY_AFTER if wait is None else wait)
        self.count("throttled")

    def check_token(self) -> None:
        """A token must exist and the API must accept it (one `GET /v1/account`).

        A rejected token is bad input (exit 2) rather than every scene failing one by one; an API that
        cannot be reached fails the run before anything is uploaded or paid for.
        """
        self._check_token_shape()  # before any request: a malformed token is never sent, nor echoed
        try:
            self.api().accounts.current()
        except ReplicateError as exc:
            if exc.status in (401, 403):
                raise InputError(self.scrub(
                    f"the Replicate API rejected the token ({api_error(exc)}): check REPLICATE_API_TOKEN "
                    "(or REPLICATE_API_KEY) in the environment or in .env")) from None
            if exc.status == 404:
                return  # a compatible server without the account endpoint: the first upload will tell
            raise GenerationError(self.scrub(f"the Replicate API is not answering: {api_error(exc)}")) from None
        except httpx.HTTPError as exc:
            where = self.base_url or "https://api.replicate.com"
            raise GenerationError(self.scrub(f"cannot reach the Replicate API at {where}: {describe(exc)}")) from None

    # -- bookkeeping ------------------------------------------------------------------------------
    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n

    def check_canceled(self, pid: str | None = None) -> None:
        if self.canceled.is_set():
            what = f"; prediction {pid} was canceled" if pid else ""
            raise GenerationError(f"canceled (interrupted){what}")

    def check_canceled_create(self) -> None:
        """After Ctrl-C a create that was still waiting for its turn is never sent: it made nothing."""
        if self.canceled.is_set():
            raise NotCreated("canceled (interrupted) before the create was sent")

    def scrub(self, text: str) -> str:
        """Remove the token from text we are about to show, however it got there: as is, as repr() or JSON
        would escape it, and each of its lines (a header split at a newline shows them apart)."""
        token = self.token
        if token and len(token) >= 4:
            forms = {token, repr(token)[1:-1], json.dumps(token)[1:-1], token.encode("unicode_escape").decode()}
            forms |= {part for part in re.split(r"\s+", token) if len(part) >= 4}
            for form in sorted(forms, key=len, reverse=True):
                text = text.replace(form, REDACTED)
        return re.sub(r"(?i)\b(bearer|token)\s+[A-Za-z0-9_\-.]{8,}", rf"\1 {REDACTED}", text)

    # -- POST with backoff ------------------------------------------------------------------------
    def with_retries(self, what: str, call: Callable[[], T]) -> T:
        """Run a POST that the client won't retry (an upload): back off on 5xx a bounded number of times. A 429
        is not a failed try: the request bucket is paused for its Retry-After (so this retry waits there), for
        up to `throttle_patience` seconds. (Creates have their own loop, which can tell a doubled create.)"""
        p = self.policy
        last: ReplicateError | Exception | None = None
        attempt = 0
        give_up = time.monotonic() + p.throttle_patience
        while True:
            self.local.retry_after = None
            try:
                return call()
            except ReplicateError as exc:
                if not (exc.status == 429 or (exc.status or 0) >= 500):
                    raise GenerationError(api_error(exc)) from None
                last = exc
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = exc  # the request never reached the server
            except httpx.HTTPError as exc:
                # The server may have acted on it (e.g. created the prediction): repeating could pay twice.
                raise GenerationError(f"network error during {what}: {describe(exc)}") from None
            throttled = isinstance(last, ReplicateError) and last.status == 429
            if throttled:
                self.count("rate_limited")
                if time.monotonic() >= give_up:
                    raise GenerationError(f"Rate limit exceeded ({api_error(last)}; still throttled after "
                                          f"{p.throttle_patience:g} s)")
                self.check_canceled()
                continue  # the paused request bucket holds the retry back
            attempt += 1
            if attempt >= p.attempts:
                break
            self.count(f"{what}_retries")
            if self.canceled.wait(self.backoff(attempt, last)):
                self.check_canceled()
        reason = api_error(last) if isinstance(last, ReplicateError) else describe(last)
        raise GenerationError(f"{reason} (gave up after {p.attempts} attempts)")

    def backoff(self, attempt: int, error: Exception | None) -> float:
        p = self.policy
        if isinstance(error, ReplicateError) and error.status == 429:
            after = retry_after(getattr(self.local, "retry_after", None), error.detail)
            if after is not None:
                # Never earlier than asked; a little later so parallel workers don't return in lockstep.
                return min(p.backoff_max, after) * random.uniform(1.0, 1.2) + random.uniform(0.0, 0.1)
        return min(p.backoff_max, p.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


def retry_after(header: str | None, detail: str | None) -> float | None:
    """Seconds from a Retry-After header, else from the API's text: "Expected available in N seconds" or
    "Your rate limit resets in ~30s"."""
    if header and header.strip().isdigit():
        return float(header.strip())
    match = re.search(r"available in (\d+(?:\.\d+)?) second|resets in ~?(\d+(?:\.\d+)?) ?s", detail or "")
    return float(match.group(1) or match.group(2)) if match else None


def is_create(request: httpx.Request) -> bool:
    """A request that creates a prediction (paid, and limited separately by the API)."""
    path = request.url.path.rstrip("/")
    return request.method == "POST" and path.endswith("/predictions")


def api_error(exc: ReplicateError) -> str:
    """One line from an API error: its detail (a 422's field list joined with ';'), title and status."""
    lines = [line.strip().lstrip("-").strip() for line in (exc.detail or "").splitlines()]
    text = "; ".join(line for line in lines if line) or exc.title or "API error"
    return f"{text} (HTTP {exc.status})" if exc.status else text


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
