"""Each model's live input schema: fetched once a day (`GET /v1/models/{owner}/{name}`), cached under the
project's `.s9/schemas/`, and used to refuse a job the model would refuse -- before anything is uploaded.

A model the API no longer has (404/410, or an error saying it is deprecated) is one line naming it and the
alternatives. When the schema cannot be fetched (the API is down), the cached one is used even if old, else the
shipped snapshot, and a warning says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from replicate.exceptions import ReplicateError

from ...atomic import write_text_atomic
from ...errors import GenerationError, InputError
from ...models import ModelSpec, alternatives
from ...models.schema import Schema, cache_path, read_cached, snapshot_schema
from ...state import STATE_DIR, ensure_ignored
from .client import Session, api_error, describe

SCHEMA_DIR = "schemas"  # under the project's .s9/


def is_deprecation(exc: ReplicateError) -> bool:
    text = f"{exc.title or ''} {exc.detail or ''}".lower()
    return exc.status in (404, 410) or "deprecat" in text or "no longer available" in text


def gone_message(spec: ModelSpec, why: str) -> str:
    """One line: the model is gone, why, and what to use instead."""
    sunset = f"; {spec.sunset_note} shut down on {spec.sunset}" if spec.sunset else ""
    return (f"{spec.id} is no longer available on Replicate ({why}){sunset}: set video_settings.video_model to "
            f"another model (alternatives: {', '.join(alternatives(spec.id))})")


class Schemas:
    """Live schemas for one run, by model id. Thread-safe; each model is fetched at most once per run."""

    def __init__(self, session: Session, cache_dir: Path, notify: Callable[[str], None]) -> None:
        self.session = session
        self.cache_dir = cache_dir
        self.notify = notify
        self._lock = threading.Lock()
        self._known: dict[str, Schema] = {}

    def get(self, spec: ModelSpec) -> Schema:
        with self._lock:
            if spec.id not in self._known:
                self._known[spec.id] = self._load(spec)
            return self._known[spec.id]

    def _load(self, spec: ModelSpec) -> Schema:
        cached = self._read_cache(spec)
        if cached is not None and time.time() - cached[0] < self.session.policy.schema_ttl:
            return cached[1]
        owner, name = spec.id.split("/", 1)
        try:
            data = self.session.get_json(f"/v1/models/{owner}/{name}")
            self.session.count("schema_fetches")
        except ReplicateError as exc:
            if exc.status in (401, 403):  # the token passed the check and was then refused: not bad input
                raise GenerationError(f"{spec.id}: could not read the model's schema ({api_error(exc)})") from None
            if exc.status is not None and exc.status < 500 and exc.status != 429 and is_deprecation(exc):
                raise InputError(gone_message(spec, api_error(exc))) from None
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                raise InputError(f"{spec.id}: could not read the model's schema ({api_error(exc)})") from None
            return self._fallback(spec, cached, api_error(exc))
        except (httpx.HTTPError, ValueError) as exc:
            return self._fallback(spec, cached, describe(exc))
        openapi = ((data or {}).get("latest_version") or {}).get("openapi_schema") if isinstance(data, dict) else None
        if not isinstance(openapi, dict):
            return self._fallback(spec, cached, "the model has no published schema")
        now = time.time()
        schema = Schema(spec.id, datetime.fromtimestamp(now, UTC).date().isoformat(), "live", openapi)
        self._write_cache(spec, now, schema)
        return schema

    def _fallback(self, spec: ModelSpec, cached: tuple[float, Schema] | None, why: str) -> Schema:
        schema = cached[1] if cached is not None else snapshot_schema(spec)
        self.notify(f"{spec.id}: could not fetch its live schema ({why}); checking inputs against the "
                    f"{'cached' if cached is not None else 'shipped'} one of {schema.date}")
        return schema

    # -- the cache ---------------------------------------------------------------------------------
    def _read_cache(self, spec: ModelSpec) -> tuple[float, Schema] | None:
        return read_cached(spec, self.cache_dir)  # None: no cache, or a damaged one -- fetch again

    def _write_cache(self, spec: ModelSpec, fetched: float, schema: Schema) -> None:
        if self.cache_dir.parent.name == STATE_DIR:
            ensure_ignored(self.cache_dir.parent)
        blob = {"model": spec.id, "fetched_at": fetched, "date": schema.date, "openapi_schema": schema.openapi}
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache_path(spec, self.cache_dir), json.dumps(blob, indent=1, sort_keys=True) + "\n")
        except OSError:
            pass  # a cache that cannot be written only costs a fetch next time

