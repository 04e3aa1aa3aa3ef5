"""The fake server itself: lifecycle, introspection, files, predictions and their rendering."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import random
import re
import shutil
import ssl
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .faults import FakeConfig
from .render import render, shape_of
from .routes import Handler, _HTTPServer
from .schemas import effective
from .state import E005, FileRecord, PredictionRecord, iso, new_id, utc_now


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
        self._files: dict[str, FileRecord] = {}
        self._predictions: dict[str, PredictionRecord] = {}
        self._seq = 0
        self.started_at = utc_now()  # what the served models give as their latest version's date
        self._renders: dict[str, Future[tuple[Path, datetime]]] = {}  # render key -> job; identical inputs render once
        self._requests: list[dict[str, Any]] = []
        self._stats: Counter[str] = Counter()
        self._executor: ThreadPoolExecutor | None = None
        self._create_tat = 0.0  # the create limit's theoretical arrival time (GCRA)
        self._throttled = 0  # creates answered 429 by the create limit
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()

        self._httpd = _HTTPServer((host, port), Handler)
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
                    "created_at": iso(p.created_at),
                    "completed_at": iso(p.completed_at) if p.completed_at else None,
                    "cancel_after": p.cancel_after, "deadline": iso(p.deadline) if p.deadline else None,
                })
            return out

    def requests(self) -> list[dict[str, Any]]:
        """Every /v1 request seen: method, path, status, wall-clock time and Cancel-After (no other header)."""
        with self._lock:
            return [dict(r) for r in self._requests]

    def stats(self) -> dict[str, Any]:
        """Request counts per "METHOD route-template" and in total, and the creates the create limit refused."""
        with self._lock:
            return {"total": sum(self._stats.values()), "by_route": dict(self._stats), "throttled": self._throttled}

    def reset(self) -> None:
        """Forget the request log and counts (files, predictions and config stay)."""
        with self._lock:
            self._requests.clear()
            self._stats.clear()
            self._throttled = 0

    def _record(self, method: str, path: str, route: str, status: int, cancel_after: str | None = None) -> None:
        with self._lock:
            # Never the Authorization header; Cancel-After is kept, to check every create carried a deadline.
            self._requests.append({"method": method, "path": path, "route": route, "status": status,
                                   "time": time.time(), "cancel_after": cancel_after})
            self._stats[f"{method} {route}"] += 1

    def throttled(self) -> int | None:
        """Whether a create now is past the account's create limit: the whole seconds until one is allowed
        (the Retry-After), or None when it may go ahead (and is counted against the limit)."""
        with self._lock:
            per_minute = self.config.create_limit_per_minute
            if per_minute <= 0:
                return None
            now = time.monotonic()
            interval = 60.0 / per_minute
            tolerance = (max(1, self.config.create_burst) - 1) * interval
            tat = max(self._create_tat, now)
            if tat - tolerance > now:
                self._throttled += 1
                return max(1, math.ceil(tat - tolerance - now))
            self._create_tat = tat + interval
            return None

    def _take(self, counter: str) -> bool:
        """Consume one shot of a "next N requests" fault; True if it fires."""
        with self._lock:
            left = getattr(self.config, counter)
            if left > 0:
                setattr(self.config, counter, left - 1)
                return True
            return False

    # -- files ------------------------------------------------------------------------------------
    def _create_file(self, name: str, content_type: str, data: bytes, metadata: dict[str, Any]) -> FileRecord:
        file_id = new_id()
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-80:] or "file"
        path = self.workdir / "files" / f"{file_id}-{safe}"
        path.write_bytes(data)
        f = FileRecord(file_id, name, content_type, len(data), hashlib.sha256(data).hexdigest(),
                  hashlib.md5(data).hexdigest(), metadata, utc_now(), path)  # md5: an etag, not security
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
    def _create_prediction(self, model: str, data: dict[str, Any], prefer: str | None,
                           cancel_after: tuple[str, float] | None = None) -> PredictionRecord:
        spec = effective(model, self.config.schema_patches)
        inp = data["input"]
        value = {name: inp.get(name, f.default) for name, f in spec.fields.items()}
        audio = spec.has_audio and bool(value.get("generate_audio", False))
        image_uri = value.get(spec.image_field)
        first_frame = self._file_for_uri(image_uri) if image_uri else None
        end_uri = value.get(spec.end_field) if spec.end_field else None
        end_frame = self._file_for_uri(end_uri) if end_uri else None
        if spec.sizes is None:  # the clip takes the first image's shape
            width, height = shape_of(first_frame)
        else:
            width, height = spec.sizes[value["aspect_ratio"]]
        prompt = str(value["prompt"])
        flag = self.config.flag_word
        render = {
            "width": width, "height": height, "duration": int(value[spec.duration_field]), "audio": audio,
            # Where the first frame came from: "file" (our upload), "data" (data: URI) or "generated".
            "fps": 24, "first_frame": ("data" if image_uri.startswith("data:") else "file") if first_frame
            else "generated",
            # The end frame (continuity), resolved the same way; None when the input has none.
            "end_frame": (("data" if end_uri.startswith("data:") else "file") if end_frame else "unresolved")
            if end_uri else None,
        }
        p = PredictionRecord(
            id=new_id(), model=model, input=inp, t0=time.monotonic(),
            latency=self.config.latency + random.uniform(0.0, max(0.0, self.config.latency_jitter)),
            created_at=utc_now(), flagged=bool(flag) and flag.lower() in prompt.lower(), render=render,
            prefer=prefer, cancel_after=cancel_after[0] if cancel_after else None,
            deadline_after=cancel_after[1] if cancel_after else None,
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
                render, self.workdir, key, seed, first_frame, width, height, duration, audio, prompt
            )
            self._renders[key] = job
            return job

    def _advance(self, p: PredictionRecord) -> None:
        """Move a prediction along its timeline: starting -> processing -> terminal (after latency).

        State is computed on access (GET, wait, introspection), so no timer thread per prediction;
        timestamps are the logical ones, not the moment somebody happened to look. A Cancel-After deadline
        it cannot finish by ends it there: ``aborted`` if it had not started (not charged), else ``canceled``.
        """
        with self._lock:
            if p.terminal:
                return
            elapsed = time.monotonic() - p.t0
            limit = p.deadline_after
            if elapsed >= p.latency / 2 and p.started_at is None and (limit is None or p.latency / 2 < limit):
                p.status = "processing"
                p.started_at = p.created_at + timedelta(seconds=p.latency / 2)
                p.logs = "Generating video...\n"
            if limit is not None and elapsed >= limit and not self._done_by(p, limit):
                at = p.created_at + timedelta(seconds=limit)
                if p.started_at is None:
                    self._end(p, "aborted", at, "Prediction aborted: its deadline passed before it started.\n")
                else:
                    self._end(p, "canceled", at, "Prediction canceled: its deadline passed.\n")
                return
            if elapsed < p.latency:
                return
            due = p.created_at + timedelta(seconds=p.latency)
            if p.flagged:
                p.status, p.error, p.completed_at = "failed", E005, due
            elif p.job is not None and p.job.done():
                exc = RuntimeError("render was cancelled") if p.job.cancelled() else p.job.exception()
                if exc is not None:
                    p.status, p.error, p.completed_at = "failed", f"Prediction failed: {exc}", utc_now()
                else:
                    p.output_path, rendered_at = p.job.result()
                    p.status, p.completed_at = "succeeded", max(due, rendered_at)
                    p.logs += "Video saved.\n"
            # else: latency is over but the clip is still rendering, so it stays "processing"

    def _wait(self, p: PredictionRecord, seconds: float) -> None:
        """Block up to ``seconds`` for a prediction to finish (the Prefer: wait behaviour).

        It sleeps until the next moment the prediction can change on its own (its latency is over, its
        deadline passes) and is woken early by a render finishing or a cancel, so hundreds of held creates
        cost the server nothing while they wait."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while True:
                self._advance(p)
                now = time.monotonic()
                remaining = deadline - now
                if p.terminal or remaining <= 0:
                    return
                moments = [p.t0 + p.latency]
                if p.deadline_after is not None:
                    moments.append(p.t0 + p.deadline_after)
                due = min((m for m in moments if m > now), default=now + 1.0)  # rendering: woken by notify
                self._changed.wait(min(remaining, due - now + 0.001))

    def _done_by(self, p: PredictionRecord, limit: float) -> bool:
        """Whether the prediction ends on its own no later than `limit` seconds after creation."""
        if p.latency > limit:
            return False
        if p.flagged:
            return True
        if p.job is None or not p.job.done():
            return False
        if p.job.cancelled() or p.job.exception() is not None:
            return True
        return p.job.result()[1] <= p.created_at + timedelta(seconds=limit)

    def _cancel(self, p: PredictionRecord) -> None:
        with self._lock:
            self._advance(p)
            if p.terminal:
                return
            p.started_at = p.started_at or utc_now()
            self._end(p, "canceled", utc_now(), "Prediction canceled.\n")
        self._notify()

    def _end(self, p: PredictionRecord, status: str, at: datetime, log: str) -> None:
        """End a prediction early (canceled, or its deadline reached); called with the lock held."""
        p.status, p.completed_at = status, at
        p.logs += log
        # Drop a queued render nobody else is waiting for, so cancel-heavy runs don't queue waste.
        job = p.job
        ended = ("canceled", "aborted")
        shared = any(q is not p and q.job is job and q.status not in ended for q in self._predictions.values())
        if job is not None and not shared and job.cancel():
            self._renders = {k: v for k, v in self._renders.items() if v is not job}


