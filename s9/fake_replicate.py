"""A small Replicate-compatible HTTP server for tests, benchmarks and users' CI.

It imitates the subset of Replicate's HTTP API that the official ``replicate`` Python client uses for
s9's three video models, so the real client (pointed here with ``REPLICATE_BASE_URL`` or
``replicate.Client(base_url=...)``) runs unchanged against it:

* ``GET /v1/account`` (the token's owner)
* ``POST /v1/files`` (multipart field ``content``), ``GET /v1/files``, ``GET|DELETE /v1/files/<id>``,
  ``GET /v1/files/<id>/download``
* ``POST /v1/models/<owner>/<name>/predictions`` (honours ``Prefer: wait[=N]``: the response is held until
  the prediction reaches any terminal state -- a concurrent cancel included -- or N seconds pass)
* ``GET /v1/predictions`` -- newest first, cursor pagination: ``next``/``previous`` are full URLs with an
  opaque ``?cursor=``, like the real API; full prediction objects (``input``, ``model``, ``created_at``,
  ``status``, ``urls``...); ``list_page_size`` per page (100, as the real API); ``list_omits_input`` leaves
  ``input`` out, for clients that must cope with a listing that does
* ``GET /v1/predictions/<id>``, ``POST /v1/predictions/<id>/cancel``
* ``GET /v1/outputs/<id>.mp4`` -- the rendered clip (a real H.264/AAC MP4 from ``s9.video.render_clip``)
* ``/_fake/...`` -- unauthenticated introspection and runtime fault injection for tests.

Deliberately independent of s9's model specs and backends (it keeps its own schema table below), so it
is a second opinion on them rather than an echo. Stdlib only, apart from Pillow for the placeholder first
frame and ``s9.video`` for rendering, both imported lazily.

Faults (``FakeConfig``, ``/_fake/config``, CLI flags): 429s and 5xx on create, 503 on status checks, failing
uploads, truncated downloads, expired outputs (410), E005 flagging, and ``create_then_error`` -- a create
that DOES make the prediction but answers 502 at once, as a gateway giving up on a held create would, so a
client that retries blindly pays twice.

Differences from the real service worth knowing:

* Output URLs live on this server (``<base>/v1/outputs/<id>.mp4``) instead of a separate delivery host.
  Like the real delivery host they need no token (set ``auth_outputs`` to require one).
* Over plain ``http`` the client leaves output URLs as ``str`` (``helpers.transform_output`` only wraps
  ``https:``/``data:`` URLs in ``FileOutput``); start the server with a certificate to get ``FileOutput``.
  The client trusts it via ``SSL_CERT_FILE=<ca.pem>`` (httpx reads it when the client builds its
  transport) or ``replicate.Client(transport=httpx.HTTPTransport(verify=ssl_context))``; a plain
  ``verify=`` kwarg is silently ignored because the client always passes its own transport.
* Unknown input fields are rejected with 422 (the schemas are closed), which is stricter than some models.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import email.parser
import email.policy
import hashlib
import json
import math
import re
import secrets
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click

E005 = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"

# --------------------------------------------------------------------------------------------------
# Schemas: our own small copy of each model's input contract (never imported from s9.models).
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    type: str  # JSON-schema type: "string", "integer", "boolean"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    uri: bool = False


@dataclass(frozen=True)
class _Model:
    fields: dict[str, _Field]
    duration_field: str
    image_field: str
    # (aspect value) -> (width, height); 1080p still renders 720p-sized frames to stay fast.
    sizes: dict[str, tuple[int, int]]
    has_audio: bool  # whether the model can make sound at all (veo: iff generate_audio)


_VEO = _Model(
    fields={
        "prompt": _Field("string", required=True),
        "image": _Field("string", uri=True),
        "duration": _Field("integer", default=8, choices=(4, 6, 8)),
        "resolution": _Field("string", default="720p", choices=("720p", "1080p")),
        "aspect_ratio": _Field("string", default="16:9", choices=("16:9", "9:16", "1:1")),
        "generate_audio": _Field("boolean", default=True),
    },
    duration_field="duration",
    image_field="image",
    sizes={"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    has_audio=True,
)

MODELS: dict[str, _Model] = {
    "openai/sora-2": _Model(
        fields={
            "prompt": _Field("string", required=True),
            "seconds": _Field("integer", default=4, choices=(4, 8, 12)),
            "aspect_ratio": _Field("string", default="landscape", choices=("landscape", "portrait")),
            "input_reference": _Field("string", uri=True),
        },
        duration_field="seconds",
        image_field="input_reference",
        sizes={"landscape": (1280, 720), "portrait": (720, 1280)},
        has_audio=False,
    ),
    "google/veo-3-fast": _VEO,
    "google/veo-3.1-fast": _VEO,
}


def _json_type(value: Any) -> str:
    """The JSON-schema name of a decoded JSON value, as validation messages spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_input(model: str, data: Any) -> list[dict[str, str]]:
    """Problems with a prediction input, shaped like the API's ``invalid_fields`` (empty when valid).

    Messages follow the wording of the real API's JSON-schema validator, and each names its field.
    """
    spec = MODELS[model]
    if not isinstance(data, dict):
        return [{"type": "invalid_type", "field": "input",
                 "description": f"Invalid type. Expected: object, given: {_json_type(data)}"}]
    problems: list[dict[str, str]] = []
    for name in data:
        if name not in spec.fields:
            problems.append({"type": "additional_property_not_allowed", "field": "input",
                             "description": f"Additional property {name} is not allowed"})
    for name, f in spec.fields.items():
        if name not in data:
            if f.required:
                problems.append({"type": "required", "field": "input", "description": f"{name} is required"})
            continue
        value = data[name]
        given = _json_type(value)
        if given != f.type:
            problems.append({"type": "invalid_type", "field": f"input.{name}",
                             "description": f"Invalid type. Expected: {f.type}, given: {given}"})
        elif f.choices is not None and value not in f.choices:
            allowed = ", ".join(json.dumps(c) for c in f.choices)
            problems.append({"type": "enum", "field": f"input.{name}",
                             "description": f"{name} must be one of the following: {allowed}"})
        elif f.uri and not urlsplit(value).scheme:
            problems.append({"type": "format", "field": f"input.{name}",
                             "description": "Does not match format 'uri'"})
    return problems


# --------------------------------------------------------------------------------------------------
# Configuration and state
# --------------------------------------------------------------------------------------------------


@dataclass
class FakeConfig:
    """Behaviour and fault injection; change it directly, via CLI flags or ``POST /_fake/config``.

    The ``*_creates``/``*_gets``/``*_uploads``/``*_downloads`` counters are "the next N requests" and
    count down as they fire.
    """

    latency: float = 0.0  # seconds from creation until a prediction may finish
    rate_limit_creates: int = 0  # next N creates -> 429 with Retry-After
    retry_after: float = 1.0  # seconds, sent rounded up as an integer (the client only parses digits)
    server_error_creates: int = 0  # next N creates -> server_error_status
    server_error_status: int = 503
    server_error_gets: int = 0  # next N prediction GETs -> 503 (the client retries these itself)
    create_then_error: int = 0  # next N creates make the prediction, then answer 502 (a gateway error)
    list_page_size: int = 100  # predictions per page of GET /v1/predictions (the real API's is 100)
    list_omits_input: bool = False  # leave `input` out of listed predictions (GET /v1/predictions/<id> keeps it)
    flag_word: str | None = None  # prompts containing it (any case) fail with E005
    fail_uploads: int = 0  # next N file uploads -> 500
    truncate_downloads: int = 0  # next N output downloads send only the first half
    expire_outputs: int = 0  # next N output downloads answer 410, as an output past its retention does
    # "short": Content-Length says half and half is sent -- the HTTP exchange is clean, so only
    #          checking the file (e.g. opening it with PyAV) catches it. This is the default.
    # "abort": Content-Length says full, half is sent, then the connection closes -- httpx raises.
    truncate_mode: str = "short"
    expected_token: str | None = None  # None: any non-empty bearer token is accepted
    auth_outputs: bool = False  # require the token on /v1/outputs too (the real delivery host does not)
    render_workers: int = 2  # clips rendered at once; read when the server starts
    max_wait: float = 60.0  # upper bound for Prefer: wait, like the real API
    # One clip per (size, duration, audio) for every prediction, ignoring prompt and image: for load tests and
    # benchmarks where rendering would swamp the orchestration being measured. Outputs stay valid clips.
    shared_renders: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a dict of changes, checking names and types; raises ValueError naming a bad field."""
        known = {f.name: f for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown config field: {name}")
            current = getattr(self, name)
            kind = type(current) if current is not None else None
            if name in ("flag_word", "expected_token"):
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{name} must be a string or null")
            elif kind is float:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                value = float(value)
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{name} must be an integer")
            elif kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be a boolean")
            elif kind is str and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            if name == "truncate_mode" and value not in ("short", "abort"):
                raise ValueError("truncate_mode must be 'short' or 'abort'")
        for name, value in changes.items():
            setattr(self, name, float(value) if isinstance(getattr(self, name), float) else value)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["expected_token"] is not None:
            data["expected_token"] = "***"  # a token, even a fake one, is not echoed back
        return data


@dataclass
class _File:
    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str
    metadata: dict[str, Any]
    created_at: datetime
    path: Path

    def json(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.created_at + timedelta(hours=24)),
            "urls": {"get": f"{base}/v1/files/{self.id}"},
        }


@dataclass
class _Prediction:
    id: str
    model: str
    input: dict[str, Any]  # exactly as received
    t0: float  # monotonic creation time
    latency: float  # frozen at creation, so runtime config changes don't move a running prediction
    created_at: datetime
    flagged: bool
    render: dict[str, Any]  # what we render: width, height, duration, audio, first_frame source
    prefer: str | None = None
    seq: int = 0  # creation order: what list cursors point at
    status: str = "starting"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output_path: Path | None = None
    error: str | None = None
    logs: str = ""
    job: Future[tuple[Path, datetime]] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled")

    def json(self, base: str, status: str | None = None) -> dict[str, Any]:
        status = status or self.status
        done = status in ("succeeded", "failed", "canceled")
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "version": "hidden",  # official models don't expose versions
            "input": self.input,
            "status": status,
            "output": f"{base}/v1/outputs/{self.id}.mp4" if status == "succeeded" else None,
            "error": self.error if status == "failed" else None,
            "logs": self.logs if status != "starting" else "",
            "metrics": {},
            "source": "api",
            "data_removed": False,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at) if self.started_at and status != "starting" else None,
            "completed_at": _iso(self.completed_at) if done and self.completed_at else None,
            "urls": {
                "get": f"{base}/v1/predictions/{self.id}",
                "cancel": f"{base}/v1/predictions/{self.id}/cancel",
            },
        }
        if status == "succeeded" and self.started_at and self.completed_at:
            data["metrics"] = {
                "predict_time": round((self.completed_at - self.started_at).total_seconds(), 6),
                "total_time": round((self.completed_at - self.created_at).total_seconds(), 6),
                "video_output_duration_seconds": self.render["duration"],
            }
        return data


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    # Replicate ids are ~26 lowercase base32 characters.
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")


class _ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block shutdown
    fake: FakeReplicate
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake here, in the per-connection thread, so a slow or broken client can't stall accept().
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response (e.g. truncate_mode="abort") are expected; keep stderr quiet.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | ssl.SSLError | TimeoutError):
            return
        super().handle_error(request, client_address)


class FakeReplicate:
    """The server. ``start()``/``stop()`` or ``with FakeReplicate() as server:`` run it in a thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: FakeConfig | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        workdir: Path | None = None,
        verbose: bool = False,
    ) -> None:
        self.config = config or FakeConfig()
        self.verbose = verbose
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="s9-fake-replicate-")) if workdir is None else Path(workdir)
        for sub in ("files", "frames", "renders"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # notified when a prediction may have moved on
        self._files: dict[str, _File] = {}
        self._predictions: dict[str, _Prediction] = {}
        self._seq = 0
        self._renders: dict[str, Future[tuple[Path, datetime]]] = {}  # render key -> job; identical inputs render once
        self._requests: list[dict[str, Any]] = []
        self._stats: Counter[str] = Counter()
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()

        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.fake = self
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
            self._httpd.ssl_context = ctx
        self.scheme = "https" if certfile else "http"

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return f"{self.scheme}://{host}:{port}"

    def _ensure_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                workers = max(1, self.config.render_workers)
                self._executor = ThreadPoolExecutor(workers, thread_name_prefix="fake-replicate-render")
            return self._executor

    def start(self) -> FakeReplicate:
        """Serve in a background thread and return self."""
        # Marked serving before the thread runs so an immediate stop() still shuts it down
        # (socketserver's shutdown() is safe to call before serve_forever() starts its loop).
        self._serving.set()
        self._thread = threading.Thread(target=self.serve_forever, name="fake-replicate", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another thread."""
        self._ensure_executor()
        self._serving.set()
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self._serving.clear()

    def stop(self) -> None:
        """Stop serving, finish or drop pending renders, and delete the temp dir if we made it."""
        if self._serving.is_set():
            self._httpd.shutdown()  # returns once serve_forever() has left its loop
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeReplicate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- introspection ----------------------------------------------------------------------------
    def predictions(self) -> list[dict[str, Any]]:
        """Every prediction record: input exactly as received, current status, what was rendered."""
        with self._lock:
            out = []
            for p in self._predictions.values():
                self._advance(p)
                out.append({
                    "id": p.id, "model": p.model, "input": copy.deepcopy(p.input), "status": p.status,
                    "error": p.error, "prefer": p.prefer, "render": dict(p.render),
                    "created_at": _iso(p.created_at),
                    "completed_at": _iso(p.completed_at) if p.completed_at else None,
                })
            return out

    def requests(self) -> list[dict[str, Any]]:
        """Every /v1 request seen: method, path, status and wall-clock time (never headers)."""
        with self._lock:
            return [dict(r) for r in self._requests]

    def stats(self) -> dict[str, Any]:
        """Request counts per "METHOD route-template" and in total."""
        with self._lock:
            return {"total": sum(self._stats.values()), "by_route": dict(self._stats)}

    def reset(self) -> None:
        """Forget the request log and counts (files, predictions and config stay)."""
        with self._lock:
            self._requests.clear()
            self._stats.clear()

    def _record(self, method: str, path: str, route: str, status: int) -> None:
        with self._lock:
            self._requests.append({"method": method, "path": path, "route": route, "status": status,
                                   "time": time.time()})
            self._stats[f"{method} {route}"] += 1

    def _take(self, counter: str) -> bool:
        """Consume one shot of a "next N requests" fault; True if it fires."""
        with self._lock:
            left = getattr(self.config, counter)
            if left > 0:
                setattr(self.config, counter, left - 1)
                return True
            return False

    # -- files ------------------------------------------------------------------------------------
    def _create_file(self, name: str, content_type: str, data: bytes, metadata: dict[str, Any]) -> _File:
        file_id = _new_id()
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-80:] or "file"
        path = self.workdir / "files" / f"{file_id}-{safe}"
        path.write_bytes(data)
        f = _File(file_id, name, content_type, len(data), hashlib.sha256(data).hexdigest(),
                  hashlib.md5(data).hexdigest(), metadata, _now(), path)  # md5: an etag, not security
        with self._lock:
            self._files[file_id] = f
        return f

    def _file_for_uri(self, uri: str) -> Path | None:
        """The local bytes behind an input URI: one of our /v1/files/<id> URLs or a base64 data: URI."""
        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                return None
            try:
                data = base64.b64decode(payload, validate=False)
            except ValueError:
                return None
            path = self.workdir / "files" / f"inline-{hashlib.sha256(data).hexdigest()[:24]}"
            path.write_bytes(data)
            return path
        # File ids are random, so a matching path is ours whichever host name the caller used.
        m = re.fullmatch(r"/v1/files/([^/]+)(?:/download)?", urlsplit(uri).path)
        with self._lock:
            f = self._files.get(m.group(1)) if m else None
        return f.path if f else None

    # -- predictions ------------------------------------------------------------------------------
    def _create_prediction(self, model: str, data: dict[str, Any], prefer: str | None) -> _Prediction:
        spec = MODELS[model]
        inp = data["input"]
        value = {name: inp.get(name, f.default) for name, f in spec.fields.items()}
        aspect = value["aspect_ratio"]
        width, height = spec.sizes[aspect]
        audio = spec.has_audio and bool(value.get("generate_audio", False))
        image_uri = value.get(spec.image_field)
        first_frame = self._file_for_uri(image_uri) if image_uri else None
        prompt = str(value["prompt"])
        flag = self.config.flag_word
        render = {
            "width": width, "height": height, "duration": int(value[spec.duration_field]), "audio": audio,
            # Where the first frame came from: "file" (our upload), "data" (data: URI) or "generated".
            "fps": 24, "first_frame": ("data" if image_uri.startswith("data:") else "file") if first_frame
            else "generated",
        }
        p = _Prediction(
            id=_new_id(), model=model, input=inp, t0=time.monotonic(), latency=self.config.latency,
            created_at=_now(), flagged=bool(flag) and flag.lower() in prompt.lower(), render=render,
            prefer=prefer,
        )
        # Seed from model + input so identical requests give identical clips (and share one render).
        seed = hashlib.sha256(json.dumps([model, inp], sort_keys=True).encode()).hexdigest()[:16]
        if not p.flagged:
            p.job = self._submit_render(seed, first_frame, width, height, render["duration"], audio, prompt)
            p.job.add_done_callback(lambda _job: self._notify())
        with self._lock:
            self._seq += 1
            p.seq = self._seq
            self._predictions[p.id] = p
        return p

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _submit_render(self, seed: str, first_frame: Path | None, width: int, height: int, duration: int,
                       audio: bool, prompt: str) -> Future[tuple[Path, datetime]]:
        if self.config.shared_renders:
            seed, first_frame, prompt = "5a4ed0", None, ""  # a fixed hex seed: it also colours the frame
        frame_digest = hashlib.sha256(first_frame.read_bytes()).hexdigest() if first_frame else "none"
        key = hashlib.sha256(
            json.dumps([seed, frame_digest, width, height, duration, audio, prompt]).encode()
        ).hexdigest()[:32]
        with self._lock:
            job = self._renders.get(key)
            if job is not None and not (job.done() and (job.cancelled() or job.exception() is not None)):
                return job
            job = self._ensure_executor().submit(
                self._render, key, seed, first_frame, width, height, duration, audio, prompt
            )
            self._renders[key] = job
            return job

    def _render(self, key: str, seed: str, first_frame: Path | None, width: int, height: int,
                duration: int, audio: bool, prompt: str) -> tuple[Path, datetime]:
        from s9.video import render_clip  # lazy: the video module may be absent or slow to import

        if first_frame is None:
            first_frame = self._placeholder_frame(seed, width, height)
        dest = self.workdir / "renders" / f"{key}.mp4"
        partial = dest.with_name(f"{key}.partial.mp4")
        caption = prompt if len(prompt) <= 80 else prompt[:77] + "..."  # "" with shared_renders
        render_clip(partial, first_frame=first_frame, width=width, height=height, duration=duration,
                    caption=caption, audio=audio, seed=seed, fps=24)
        partial.replace(dest)  # atomic: a download never sees a half-written clip
        return dest, _now()

    def _placeholder_frame(self, seed: str, width: int, height: int) -> Path:
        from PIL import Image  # lazy: only needed when no usable image was given

        path = self.workdir / "frames" / f"{seed}-{width}x{height}.jpg"
        if not path.exists():
            r, g, b = bytes.fromhex(seed[:6])
            img = Image.new("RGB", (width, height), (64 + r // 2, 64 + g // 2, 64 + b // 2))
            img.save(path, "JPEG", quality=90)
        return path

    def _advance(self, p: _Prediction) -> None:
        """Move a prediction along its timeline: starting -> processing -> terminal (after latency).

        State is computed on access (GET, wait, introspection), so no timer thread per prediction;
        timestamps are the logical ones, not the moment somebody happened to look.
        """
        with self._lock:
            if p.terminal:
                return
            elapsed = time.monotonic() - p.t0
            if elapsed >= p.latency / 2 and p.started_at is None:
                p.status = "processing"
                p.started_at = p.created_at + timedelta(seconds=p.latency / 2)
                p.logs = "Generating video...\n"
            if elapsed < p.latency:
                return
            due = p.created_at + timedelta(seconds=p.latency)
            if p.flagged:
                p.status, p.error, p.completed_at = "failed", E005, due
            elif p.job is not None and p.job.done():
                exc = RuntimeError("render was cancelled") if p.job.cancelled() else p.job.exception()
                if exc is not None:
                    p.status, p.error, p.completed_at = "failed", f"Prediction failed: {exc}", _now()
                else:
                    p.output_path, rendered_at = p.job.result()
                    p.status, p.completed_at = "succeeded", max(due, rendered_at)
                    p.logs += "Video saved.\n"
            # else: latency is over but the clip is still rendering, so it stays "processing"

    def _wait(self, p: _Prediction, seconds: float) -> None:
        """Block up to ``seconds`` for a prediction to finish (the Prefer: wait behaviour)."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while True:
                self._advance(p)
                remaining = deadline - time.monotonic()
                if p.terminal or remaining <= 0:
                    return
                # Wake for render completion or cancel (notify), or to re-check the latency clock.
                self._changed.wait(min(remaining, 0.05))

    def _cancel(self, p: _Prediction) -> None:
        with self._lock:
            self._advance(p)
            if p.terminal:
                return
            p.status = "canceled"
            p.started_at = p.started_at or _now()
            p.completed_at = _now()
            p.logs += "Prediction canceled.\n"
            # Drop a queued render nobody else is waiting for, so cancel-heavy runs don't queue waste.
            job = p.job
            shared = any(q is not p and q.job is job and q.status != "canceled" for q in self._predictions.values())
            if job is not None and not shared and job.cancel():
                self._renders = {k: v for k, v in self._renders.items() if v is not job}
        self._notify()


def _encode_cursor(direction: str, seq: int) -> str:
    # Opaque to clients, like the real API's: they only ever follow the URLs they are given.
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        direction, _, seq = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if direction in ("before", "after"):
            return direction, int(seq)
    except (ValueError, UnicodeDecodeError):
        pass
    raise _ApiError(400, "Invalid cursor.")


def _parse_prefer_wait(header: str | None, max_wait: float) -> float | None:
    """Seconds to hold a create for ``Prefer: wait`` / ``Prefer: wait=N``; None when not asked."""
    if not header:
        return None
    for part in header.split(","):
        token = part.strip().lower()
        if token == "wait":
            return max_wait
        if token.startswith("wait="):
            try:
                return max(0.0, min(float(token[5:]), max_wait))
            except ValueError:
                return None
    return None


_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("/v1/account", re.compile(r"/v1/account")),
    ("/v1/files", re.compile(r"/v1/files")),
    ("/v1/files/{id}", re.compile(r"/v1/files/(?P<id>[^/]+)")),
    ("/v1/files/{id}/download", re.compile(r"/v1/files/(?P<id>[^/]+)/download")),
    ("/v1/models/{owner}/{name}/predictions",
     re.compile(r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions")),
    ("/v1/predictions", re.compile(r"/v1/predictions")),
    ("/v1/predictions/{id}", re.compile(r"/v1/predictions/(?P<id>[^/]+)")),
    ("/v1/predictions/{id}/cancel", re.compile(r"/v1/predictions/(?P<id>[^/]+)/cancel")),
    ("/v1/outputs/{id}.mp4", re.compile(r"/v1/outputs/(?P<id>[^/]+)\.mp4")),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx pools connections
    server_version = "FakeReplicate/1"
    timeout = 120  # drop idle keep-alive connections eventually
    server: _HTTPServer

    @property
    def fake(self) -> FakeReplicate:
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs to stderr on every request; only the request line when verbose (no headers).
        if self.fake.verbose:
            sys.stderr.write(f"fake-replicate: {self.address_string()} {format % args}\n")

    # -- plumbing ---------------------------------------------------------------------------------
    def _base(self) -> str:
        # URLs we hand out use the Host the client reached us by (works behind 0.0.0.0 or a proxy name).
        host = self.headers.get("Host")
        return f"{self.fake.scheme}://{host}" if host else self.fake.base_url

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None, length: int | None = None) -> None:
        if self._route is not None:
            # Record before the client can see the response, so a test reading the log right after
            # a request always finds it there.
            self.fake._record(self.command, self.path, self._route, status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, err: _ApiError) -> None:
        self._json(err.status, {"title": _TITLES.get(err.status, "Error"), "detail": err.detail,
                                "status": err.status, **err.extra}, headers=err.headers)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._route: str | None = None
        body = self._read_body()  # always drain the body, or keep-alive would desync on early errors
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if path.startswith("/_fake/") or path == "/_fake":
            self._fake_endpoint(path, body)
            return
        route, params = "(unknown)", {}
        for template, pattern in _ROUTES:
            m = pattern.fullmatch(path)
            if m:
                route, params = template, m.groupdict()
                break
        self._route = route
        try:
            if path.startswith("/v1/") and (route != "/v1/outputs/{id}.mp4" or self.fake.config.auth_outputs):
                self._check_auth()
            if route == "(unknown)":
                raise _ApiError(404, "Not found.")
            handler = getattr(self, "_" + self.command.lower() + _HANDLER_SUFFIX.get(route, ""), None)
            if handler is None or route not in _HANDLER_SUFFIX:
                raise _ApiError(405, "Method not allowed.")
            handler(body, **params)
        except _ApiError as err:
            self._error(err)
        except Exception as exc:  # a bug here should be a 500 the client sees, not a hung connection
            self._json(500, {"title": "Internal Server Error", "detail": f"fake server error: {exc}",
                             "status": 500})
            raise

    def _check_auth(self) -> None:
        # Never log or store the header: it may hold a real token by mistake.
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        expected = self.fake.config.expected_token
        if scheme.lower() not in ("bearer", "token") or not token or (expected is not None and token != expected):
            raise _ApiError(401, "Unauthenticated")

    # -- /v1/files --------------------------------------------------------------------------------
    def _post_files(self, body: bytes) -> None:
        if self.fake._take("fail_uploads"):
            raise _ApiError(500, "Internal server error while storing the file.")
        ctype = self.headers.get("Content-Type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise _ApiError(400, "Expected multipart/form-data with a 'content' file field.")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
        )
        content, metadata = None, {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "content":
                content = part
            elif name == "metadata":
                try:
                    metadata = json.loads(part.get_payload(decode=True) or b"{}")
                except ValueError as exc:
                    raise _ApiError(400, "metadata must be a JSON object.") from exc
        if content is None:
            raise _ApiError(400, "Missing multipart field 'content'.")
        data = content.get_payload(decode=True) or b""
        f = self.fake._create_file(content.get_filename() or "file", content.get_content_type(), data,
                                   metadata if isinstance(metadata, dict) else {})
        self._json(201, f.json(self._base()))

    def _get_account(self, body: bytes) -> None:
        # The token owner, as the real API answers; clients use it to check a token before spending.
        self._json(200, {"type": "user", "username": "fake-replicate", "name": "Fake Replicate", "github_url": None})

    def _get_files(self, body: bytes) -> None:
        with self.fake._lock:
            files = list(self.fake._files.values())
        self._json(200, {"results": [f.json(self._base()) for f in files], "next": None, "previous": None})

    def _lookup(self, table: dict[str, Any], id: str) -> Any:
        with self.fake._lock:
            found = table.get(id)
        if found is None:
            raise _ApiError(404, "Not found.")
        return found

    def _lookup_file(self, id: str) -> _File:
        return self._lookup(self.fake._files, id)

    def _get_file(self, body: bytes, id: str) -> None:
        self._json(200, self._lookup_file(id).json(self._base()))

    def _delete_file(self, body: bytes, id: str) -> None:
        f = self._lookup_file(id)
        with self.fake._lock:
            self.fake._files.pop(id, None)
        f.path.unlink(missing_ok=True)
        self._send(204, content_type="text/plain")

    def _get_file_download(self, body: bytes, id: str) -> None:
        f = self._lookup_file(id)
        self._send(200, f.path.read_bytes(), content_type=f.content_type)

    _head_file_download = _get_file_download

    # -- predictions ------------------------------------------------------------------------------
    def _post_model_predictions(self, body: bytes, owner: str, name: str) -> None:
        model = f"{owner}/{name}"
        if self.fake._take("rate_limit_creates"):
            wait = max(0, math.ceil(self.fake.config.retry_after))
            raise _ApiError(429, f"Request was throttled. Expected available in {wait} second"
                            f"{'' if wait == 1 else 's'}.", headers={"Retry-After": str(wait)})
        if self.fake._take("server_error_creates"):
            status = self.fake.config.server_error_status
            raise _ApiError(status, "The service is temporarily unavailable. Please try again later.")
        if model not in MODELS:
            raise _ApiError(404, "The requested resource could not be found.")
        try:
            data = json.loads(body or b"null")
        except ValueError as exc:
            raise _ApiError(400, "Request body is not valid JSON.") from exc
        if not isinstance(data, dict) or "input" not in data:
            raise _ApiError(422, "- (root): input is required\n", title="Input validation failed",
                            invalid_fields=[{"type": "required", "field": "(root)",
                                             "description": "input is required"}])
        problems = validate_input(model, data["input"])
        if problems:
            detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
            raise _ApiError(422, detail, title="Input validation failed", invalid_fields=problems)
        prefer = self.headers.get("Prefer")
        p = self.fake._create_prediction(model, data, prefer)
        if self.fake._take("create_then_error"):
            # Created (and running, and billed) -- but the client only hears of a gateway failure.
            raise _ApiError(502, "Bad gateway: the upstream server did not answer in time.")
        wait = _parse_prefer_wait(prefer, self.fake.config.max_wait)
        if wait:
            self.fake._wait(p, wait)
        with self.fake._lock:
            # The real API answers a create with a terminal prediction or one that says "starting" --
            # replicate.run() relies on it: it treats any other status after Prefer: wait as finished.
            status = p.status if p.terminal else "starting"
            self._json(201, p.json(self._base(), status=status))

    def _get_predictions(self, body: bytes) -> None:
        query = parse_qs(urlsplit(self.path).query)
        cursor = (query.get("cursor") or [None])[0]
        size = max(1, self.fake.config.list_page_size)
        base = self._base()
        with self.fake._lock:
            everything = sorted(self.fake._predictions.values(), key=lambda p: p.seq, reverse=True)
            for p in everything:
                self.fake._advance(p)
            if cursor is None:
                page = everything[:size]
            else:
                direction, seq = _decode_cursor(cursor)
                if direction == "before":  # a `next` page: older than the last one seen
                    page = [p for p in everything if p.seq < seq][:size]
                else:  # a `previous` page: the ones just newer than the first one seen
                    page = [p for p in everything if p.seq > seq][-size:]
            older = bool(page) and everything[-1].seq < page[-1].seq
            newer = bool(page) and everything[0].seq > page[0].seq
            data = {
                "next": f"{base}/v1/predictions?cursor={_encode_cursor('before', page[-1].seq)}" if older else None,
                "previous": f"{base}/v1/predictions?cursor={_encode_cursor('after', page[0].seq)}" if newer else None,
                "results": [p.json(base) for p in page],
            }
            if self.fake.config.list_omits_input:
                for item in data["results"]:
                    del item["input"]
        self._json(200, data)

    def _lookup_prediction(self, id: str) -> _Prediction:
        return self._lookup(self.fake._predictions, id)

    def _get_prediction(self, body: bytes, id: str) -> None:
        if self.fake._take("server_error_gets"):
            raise _ApiError(503, "The service is temporarily unavailable. Please try again later.")
        p = self._lookup_prediction(id)
        with self.fake._lock:
            self.fake._advance(p)
            self._json(200, p.json(self._base()))

    def _post_prediction_cancel(self, body: bytes, id: str) -> None:
        p = self._lookup_prediction(id)
        self.fake._cancel(p)
        with self.fake._lock:
            self._json(200, p.json(self._base()))

    def _get_output(self, body: bytes, id: str) -> None:
        with self.fake._lock:
            p = self.fake._predictions.get(id)
            if p is not None:
                self.fake._advance(p)
        if p is None or p.status != "succeeded" or p.output_path is None:
            raise _ApiError(404, "Not found.")
        if self.fake._take("expire_outputs"):
            raise _ApiError(410, "This output has expired.")
        data = p.output_path.read_bytes()
        if self.command == "GET" and self.fake._take("truncate_downloads"):
            half = data[: len(data) // 2]
            if self.fake.config.truncate_mode == "abort":
                # Promise the whole file, send half, hang up: the client's HTTP layer sees the short read.
                self._send(200, half, content_type="video/mp4", length=len(data))
                self.close_connection = True
            else:
                # A self-consistent short response: only inspecting the file reveals the damage.
                self._send(200, half, content_type="video/mp4")
            return
        self._send(200, data, content_type="video/mp4")

    _head_output = _get_output

    # -- /_fake -----------------------------------------------------------------------------------
    def _fake_endpoint(self, path: str, body: bytes) -> None:
        fake = self.fake
        try:
            if path == "/_fake/config" and self.command == "GET":
                with fake._lock:
                    self._json(200, fake.config.to_dict())
            elif path == "/_fake/config" and self.command == "POST":
                try:
                    changes = json.loads(body or b"{}")
                    if not isinstance(changes, dict):
                        raise ValueError("expected a JSON object of config fields")
                    with fake._lock:
                        fake.config.update(changes)
                except ValueError as exc:
                    raise _ApiError(400, str(exc)) from exc
                with fake._lock:
                    self._json(200, fake.config.to_dict())
            elif path == "/_fake/requests" and self.command == "GET":
                self._json(200, fake.requests())
            elif path == "/_fake/predictions" and self.command == "GET":
                self._json(200, fake.predictions())
            elif path == "/_fake/stats" and self.command == "GET":
                self._json(200, fake.stats())
            elif path == "/_fake/reset" and self.command == "POST":
                fake.reset()
                self._json(200, {"ok": True})
            else:
                raise _ApiError(404, "Not found.")
        except _ApiError as err:
            self._error(err)


# Route template -> method-name suffix; the handler is "_" + method + suffix (e.g. _post_files).
_HANDLER_SUFFIX = {
    "/v1/account": "_account",
    "/v1/files": "_files",
    "/v1/files/{id}": "_file",
    "/v1/files/{id}/download": "_file_download",
    "/v1/models/{owner}/{name}/predictions": "_model_predictions",
    "/v1/predictions": "_predictions",
    "/v1/predictions/{id}": "_prediction",
    "/v1/predictions/{id}/cancel": "_prediction_cancel",
    "/v1/outputs/{id}.mp4": "_output",
}

_TITLES = {
    400: "Bad Request", 401: "Unauthenticated", 404: "Not found", 405: "Method not allowed",
    422: "Input validation failed", 429: "Request was throttled", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable",
}


# --------------------------------------------------------------------------------------------------
# CLI: `s9 fake-replicate` (mounted by s9.cli) and `python -m s9.fake_replicate`
# --------------------------------------------------------------------------------------------------


@click.command("fake-replicate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it local).")
@click.option("--port", default=0, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--latency", default=0.0, show_default=True, type=float, help="Seconds until a prediction ends.")
@click.option("--flag-word", default=None, help="Prompts containing this word fail with E005.")
@click.option("--expected-token", default=None, help="Only accept this bearer token (default: any).")
@click.option("--rate-limit-creates", default=0, type=int, help="Answer the next N creates with 429.")
@click.option("--retry-after", default=1.0, type=float, show_default=True, help="Retry-After seconds for 429.")
@click.option("--server-error-creates", default=0, type=int, help="Answer the next N creates with 503.")
@click.option("--server-error-gets", default=0, type=int, help="Answer the next N prediction GETs with 503.")
@click.option("--create-then-error", default=0, type=int,
              help="The next N creates make the prediction but answer 502 (a gateway error).")
@click.option("--list-page-size", default=100, type=int, show_default=True,
              help="Predictions per page of GET /v1/predictions.")
@click.option("--fail-uploads", default=0, type=int, help="Answer the next N uploads with 500.")
@click.option("--expire-outputs", default=0, type=int, help="Answer the next N output downloads with 410 Gone.")
@click.option("--truncate-downloads", default=0, type=int, help="Send only half of the next N clips.")
@click.option("--truncate-mode", type=click.Choice(["short", "abort"]), default="short", show_default=True,
              help="short: honest half-length response; abort: full Content-Length, then hang up.")
@click.option("--render-workers", default=2, type=int, show_default=True, help="Clips rendered in parallel.")
@click.option("--shared-renders", is_flag=True,
              help="Serve one clip per size/duration/audio to every prediction (load tests, benchmarks).")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="Serve https with this cert.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="Private key for --certfile.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep files here.")
@click.option("-v", "--verbose", is_flag=True, help="Log each request line to stderr.")
def fake_replicate_command(host: str, port: int, latency: float, flag_word: str | None,
                           expected_token: str | None, rate_limit_creates: int, retry_after: float,
                           server_error_creates: int, server_error_gets: int, create_then_error: int,
                           list_page_size: int, fail_uploads: int, expire_outputs: int,
                           truncate_downloads: int, truncate_mode: str,
                           render_workers: int, shared_renders: bool,
                           certfile: str | None, keyfile: str | None, workdir: Path | None,
                           verbose: bool) -> None:
    """Run a local Replicate-compatible server; prints REPLICATE_BASE_URL=<url> first."""
    config = FakeConfig(
        latency=latency, flag_word=flag_word, expected_token=expected_token,
        rate_limit_creates=rate_limit_creates, retry_after=retry_after,
        server_error_creates=server_error_creates, server_error_gets=server_error_gets,
        create_then_error=create_then_error, list_page_size=list_page_size,
        fail_uploads=fail_uploads, expire_outputs=expire_outputs, truncate_downloads=truncate_downloads,
        truncate_mode=truncate_mode,
        render_workers=render_workers, shared_renders=shared_renders,
    )
    server = FakeReplicate(host, port, config=config, certfile=certfile, keyfile=keyfile, workdir=workdir,
                           verbose=verbose)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server.start()
    try:
        # Callers (scripts, CI) read this first line to find the server.
        click.echo(f"REPLICATE_BASE_URL={server.base_url}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m s9.fake_replicate``."""
    fake_replicate_command.main(args=argv, prog_name="python -m s9.fake_replicate")


if __name__ == "__main__":
    main()
