"""The fake's records (uploaded files, predictions) and the small helpers its routes share."""

from __future__ import annotations

import base64
import re
import secrets
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

E005 = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"


@dataclass
class FileRecord:
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
            "created_at": iso(self.created_at),
            "expires_at": iso(self.created_at + timedelta(hours=24)),
            "urls": {"get": f"{base}/v1/files/{self.id}"},
        }


@dataclass
class PredictionRecord:
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
    deadline_after: float | None = None  # Cancel-After, in seconds from creation
    cancel_after: str | None = None  # the header as received

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def deadline(self) -> datetime | None:
        return None if self.deadline_after is None else self.created_at + timedelta(seconds=self.deadline_after)

    def data_removed(self, ttl: float | None) -> bool:
        """Past its retention: the real API removes input, output and logs an hour after a prediction ends."""
        return (ttl is not None and self.terminal and self.completed_at is not None
                and (utc_now() - self.completed_at).total_seconds() >= ttl)

    def json(self, base: str, status: str | None = None, ttl: float | None = None) -> dict[str, Any]:
        status = status or self.status
        done = status in TERMINAL
        removed = status == self.status and self.data_removed(ttl)
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "version": "hidden",  # official models don't expose versions
            "input": {} if removed else self.input,
            "status": status,
            "output": f"{base}/v1/outputs/{self.id}.mp4" if status == "succeeded" and not removed else None,
            "error": self.error if status == "failed" else None,
            "logs": self.logs if status != "starting" and not removed else "",
            "metrics": {},
            "source": "api",
            "data_removed": removed,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at) if self.started_at and status != "starting" else None,
            "completed_at": iso(self.completed_at) if done and self.completed_at else None,
            "urls": {
                "get": f"{base}/v1/predictions/{self.id}",
                "cancel": f"{base}/v1/predictions/{self.id}/cancel",
            },
        }
        if self.deadline is not None:
            data["deadline"] = iso(self.deadline)
        if status in ("succeeded", "canceled") and self.started_at and self.completed_at:
            data["metrics"] = {
                "predict_time": round((self.completed_at - self.started_at).total_seconds(), 6),
                "total_time": round((self.completed_at - self.created_at).total_seconds(), 6),
            }
            if status == "succeeded":
                data["metrics"]["video_output_duration_seconds"] = self.render["duration"]
        return data


#: "aborted": ended by its Cancel-After deadline before it started (not charged).
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})


def parse_cancel_after(header: str) -> float | None:
    """Seconds from a ``Cancel-After`` duration: Go-style ``90s``, ``5m``, ``1h30m``, ``1.5s``, or bare seconds.

    None when unreadable or not positive."""
    text = header.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
        return seconds if seconds > 0 else None
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    seconds = sum(float(n) * scale[u] for n, u in parts)
    return seconds if seconds > 0 else None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    # Replicate ids are ~26 lowercase base32 characters.
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra



def encode_cursor(direction: str, seq: int) -> str:
    # Opaque to clients, like the real API's: they only ever follow the URLs they are given.
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        direction, _, seq = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if direction in ("before", "after"):
            return direction, int(seq)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ApiError(400, "Invalid cursor.")


def parse_prefer_wait(header: str | None, max_wait: float) -> float | None:
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


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time from a query parameter (a trailing Z, any fraction); a 400 naming it when unreadable."""
    value = text.strip()
    value = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 time, got {text[:40]!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=utc_now().tzinfo)
