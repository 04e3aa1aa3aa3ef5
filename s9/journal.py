"""The prediction journal: every paid prediction is written down the moment it exists, keyed by job fingerprint.

A later run (after a crash, `kill -9`, a failed download) finds the prediction here and resumes it instead of
paying for a new one. An entry is written *before* the create request is sent, in state ``submitting`` with the
model, the exact input and the submit time, because a create held open by ``Prefer: wait`` only reveals the
prediction's id when it answers: a run that dies before then leaves that entry, and the next run looks the
prediction up by its input (the backend lists recent predictions) instead of paying for it twice.

States: ``submitting`` (sent, or about to be; id unknown) -> ``starting`` | ``processing`` -> ``succeeded`` |
``failed`` | ``canceled`` | ``aborted`` (its Cancel-After deadline passed before it started: not charged); plus
``expired`` (output gone: a new prediction is needed) and ``rejected`` (the API refused the create, so nothing
was made or paid for).

Each entry also keeps what was paid (``billed``: output seconds x the model's price, and the API's
``predict_time``) for its prediction, and the same for the predictions it replaced (``earlier``): `s9.spend`
sums them. An entry that cannot be read is never taken as "nothing was paid": `Journal.read` raises
`CorruptEntry`, and the backend recovers through the prediction listing instead.

Layout, in the project root (the nearest folder with `.dvc`, else `.git`, else the working directory)::

    .s9/journal/<fingerprint>.json   one small JSON object per clip, replaced atomically (temp + os.replace)
    .s9/journal/<fingerprint>.lock   flock(2) target held around "look up or create"

One file per fingerprint keeps concurrent writers (threads and processes) out of each other's way; the lock
makes "two runs generating the same clip" create one prediction. Never stores the API token.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .state import STATE_DIR, ensure_ignored, project_root

JOURNAL_DIR = "journal"  # under the project's .s9/ folder

#: Prediction states as Replicate names them, plus "expired" (output gone; a new prediction is needed) and
#: "rejected" (the create was refused: nothing exists to follow).
SUBMITTING = "submitting"
ACTIVE_STATES = frozenset({"starting", "processing", "succeeded"})
DEAD_STATES = frozenset({"failed", "canceled", "aborted", "expired", "rejected"})

_FINGERPRINT = re.compile(r"[0-9a-f]{16,128}")


@dataclass(frozen=True)
class JournalEntry:
    prediction_id: str | None  # None while "submitting": the create has not answered yet
    model: str
    state: str  # submitting | starting | processing | succeeded | failed | canceled | expired | rejected
    created_at: float  # epoch seconds when the create was sent (the timeout counts from here)
    updated_at: float
    output_url: str | None = None
    error: str | None = None
    label: str | None = None  # "concept scene N", for a person reading the folder
    input: dict[str, Any] | None = None  # the exact input sent (the upload URL in it is not secret)
    submitted_at: str | None = None  # UTC ISO-8601 time the create was sent: where a recovery listing starts
    deadline: str | None = None  # UTC ISO-8601 Cancel-After deadline: the server ends the prediction then
    concept: str | None = None
    scene: int | None = None
    billed: dict[str, Any] | None = None  # what this entry's prediction cost (see `billing`)
    earlier: list[dict[str, Any]] | None = None  # the `billed` records of predictions this entry replaced
    take: int = 0  # the fresh take (`--new-take`) this prediction was created for; 0 for an ordinary run

    @classmethod
    def submitting(
        cls, model: str, input: dict[str, Any], now: float | None = None, label: str | None = None, **more: Any
    ) -> JournalEntry:
        """The entry written just before a create request goes out (`more`: deadline, concept, scene, earlier)."""
        now = time.time() if now is None else now
        return cls(None, model, SUBMITTING, now, now, label=label, input=input, submitted_at=utc_iso(now), **more)

    @property
    def charges(self) -> list[dict[str, Any]]:
        """Every billed record of this fingerprint: the predictions replaced, then the current one."""
        return [*(self.earlier or []), *([self.billed] if self.billed else [])]

    @property
    def resumable(self) -> bool:
        """Worth polling/downloading again rather than paying for a new prediction."""
        return bool(self.prediction_id) and (self.state in ACTIVE_STATES or self.state == SUBMITTING)

    @property
    def unconfirmed(self) -> bool:
        """A create was sent but its answer never recorded: the prediction may or may not exist."""
        return self.state == SUBMITTING and not self.prediction_id

    @property
    def submitted_epoch(self) -> float:
        """When the create was sent, in epoch seconds (``submitted_at`` when readable, else ``created_at``)."""
        parsed = parse_utc(self.submitted_at) if self.submitted_at else None
        return parsed if parsed is not None else self.created_at

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JournalEntry:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def billing(prediction_id: str, model: str, output_seconds: float, price_per_second: float,
            predict_time: float | None, completed_at: str | None, concept: str | None,
            scene: int | None) -> dict[str, Any]:
    """The billed basis of one prediction: video models bill per second of output."""
    return {
        "prediction_id": prediction_id, "model": model, "concept": concept, "scene": scene,
        "output_seconds": output_seconds, "price_per_second": price_per_second,
        "cost_usd": round(output_seconds * price_per_second, 6), "predict_time": predict_time,
        "completed_at": completed_at or utc_iso(time.time()),
    }


class CorruptEntry(Exception):
    """A journal file that exists but cannot be read: the prediction it recorded may exist (and be paid for)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: unreadable journal entry")
        self.path = path
        try:
            self.mtime: float = path.stat().st_mtime
        except OSError:
            self.mtime = time.time()


def _well_formed(entry: JournalEntry) -> bool:
    number = (int, float)
    return (isinstance(entry.model, str) and isinstance(entry.state, str)
            and (entry.prediction_id is None or isinstance(entry.prediction_id, str))
            and isinstance(entry.created_at, number) and not isinstance(entry.created_at, bool)
            and isinstance(entry.updated_at, number) and not isinstance(entry.updated_at, bool)
            and (entry.input is None or isinstance(entry.input, dict))
            and (entry.billed is None or isinstance(entry.billed, dict))
            and isinstance(entry.take, int) and not isinstance(entry.take, bool)
            and (entry.earlier is None or (isinstance(entry.earlier, list)
                                           and all(isinstance(e, dict) for e in entry.earlier))))


class Journal:
    """Thread- and process-safe store of `JournalEntry` by fingerprint under `root`."""

    def __init__(self, root: str | Path | None = None) -> None:
        # Default: the project's one .s9/journal (found from the working directory, so running from a
        # subfolder finds the same entries). Absolute now, so a later chdir can't split it in two.
        # Nothing is created until the first write: a run refused before any work leaves no trace.
        self.root = Path(root).absolute() if root is not None else project_root() / STATE_DIR / JOURNAL_DIR
        self._ignored_parent = root is None
        self._guard = threading.Lock()
        self._locks: dict[str, _FileLock] = {}
        # Told (fingerprint, the entry's JSON) after every write: e.g. a shard mirrors its journal on the DVC
        # remote, so a rerun on another machine follows what was paid for.
        self.on_record: Callable[[str, str], None] | None = None

    # -- paths --------------------------------------------------------------------------------------
    def path(self, fingerprint: str) -> Path:
        return self.root / f"{_check(fingerprint)}.json"

    def _lock_path(self, fingerprint: str) -> Path:
        return self.root / f"{_check(fingerprint)}.lock"

    # -- reading ------------------------------------------------------------------------------------
    def get(self, fingerprint: str) -> JournalEntry | None:
        """The entry for a fingerprint, or None (also for an unreadable file: callers that decide whether to
        pay use `read`, which tells the two apart)."""
        try:
            return self.read(fingerprint)
        except CorruptEntry:
            return None

    def read(self, fingerprint: str) -> JournalEntry | None:
        """The entry for a fingerprint; None when there is none; `CorruptEntry` when its file is unreadable."""
        path = self.path(fingerprint)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            raise CorruptEntry(path) from None
        try:
            entry = JournalEntry.from_json(json.loads(text))
        except (ValueError, TypeError, AttributeError):
            raise CorruptEntry(path) from None
        if not _well_formed(entry):
            raise CorruptEntry(path)
        return entry

    def corrupt(self) -> list[Path]:
        """The entry files that cannot be read."""
        bad: list[Path] = []
        if self.root.is_dir():
            for path in sorted(self.root.glob("*.json")):
                if _FINGERPRINT.fullmatch(path.stem):
                    try:
                        self.read(path.stem)
                    except CorruptEntry:
                        bad.append(path)
        return bad

    def entries(self) -> dict[str, JournalEntry]:
        """Every readable entry, by fingerprint."""
        out: dict[str, JournalEntry] = {}
        if not self.root.is_dir():
            return out
        for path in sorted(self.root.glob("*.json")):
            entry = self.get(path.stem) if _FINGERPRINT.fullmatch(path.stem) else None
            if entry is not None:
                out[path.stem] = entry
        return out

    # -- writing ------------------------------------------------------------------------------------
    def record(self, fingerprint: str, entry: JournalEntry) -> JournalEntry:
        """Write (or overwrite) the entry for a fingerprint, atomically."""
        self._prepare()
        target = self.path(fingerprint)
        blob = json.dumps({"fingerprint": fingerprint, **entry.to_json()}, indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())  # the id is what saves money after a crash: make it durable
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if self.on_record is not None:
            self.on_record(fingerprint, blob)
        return entry

    def update(self, fingerprint: str, **changes: Any) -> JournalEntry | None:
        """Change some fields of an existing entry (under its lock); None when there is no entry."""
        with self.lock(fingerprint):
            current = self.get(fingerprint)
            if current is None:
                return None
            return self.record(fingerprint, replace(current, updated_at=time.time(), **changes))

    # -- locking ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, fingerprint: str) -> Iterator[None]:
        """Exclusive per-fingerprint lock across threads and processes; re-entrant within a thread."""
        key = _check(fingerprint)
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                self._prepare()
                lock = self._locks[key] = _FileLock(self._lock_path(key))
            lock.users += 1
        try:
            with lock:
                yield
        finally:
            # Dropped once nobody holds or waits for it: a run of 10,000 scenes keeps the ones in flight only.
            with self._guard:
                lock.users -= 1
                if not lock.users and self._locks.get(key) is lock:
                    del self._locks[key]

    def _prepare(self) -> None:
        if self._ignored_parent:
            ensure_ignored(self.root.parent)  # the project's .s9/: never committed by accident
        self.root.mkdir(parents=True, exist_ok=True)


class _FileLock:
    """An RLock for this process's threads plus flock(2) for other processes (flock alone would not be
    re-entrant, and two fds of one process on the same file would deadlock each other)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self.users = 0  # holders and waiters, counted by `Journal.lock` under its guard

    def __enter__(self) -> None:
        self._rlock.acquire()
        try:
            if self._depth == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        finally:
            self._rlock.release()


def utc_iso(epoch: float) -> str:
    """Epoch seconds as the API writes times: ISO-8601 UTC with microseconds and a Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str | None) -> float | None:
    """Epoch seconds from an ISO-8601 time (a trailing Z, any number of fraction digits); None if unreadable.

    A time without a zone is taken as UTC, which is what the API means."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip()
    value = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    # fromisoformat takes at most 6 fraction digits; some servers send 9.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _check(fingerprint: str) -> str:
    # Fingerprints become file names: only hex digests, never a path.
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise ValueError(f"not a fingerprint: {fingerprint!r}")
    return fingerprint
