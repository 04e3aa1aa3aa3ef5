"""Shards: `s9 repro --shard K/N` on N CI runners at once, coordinated only through the DVC remote.

A concept belongs to shard `sha256(name) mod N` (+1): every machine agrees without talking to the others, a
concept's scenes stay together, and adding a concept moves no other. A shard makes only its stale scenes,
pushes each one's outputs and run-cache entry to the default remote as it finishes, and records nothing in
dvc.lock; afterwards `dvc repro --pull` (or `s9 repro`) on any one machine restores every scene from the run
cache. Its prediction journal is mirrored on the remote too, so a shard rerun on another machine after a crash
follows the predictions already paid for instead of paying again.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .layout import ConceptRef

if TYPE_CHECKING:
    from dvc.repo import Repo

    from ..journal import Journal

JOURNAL_FOLDER = ("s9", "journal")  # on the default remote


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) a concept belongs to: from its name alone, the same on every machine."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % count + 1


@dataclass(frozen=True)
class Shard:
    index: int  # 1..count
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N` with 1 <= K <= N, as CI matrices number their jobs (GitLab's CI_NODE_INDEX/CI_NODE_TOTAL)."""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not found or not 1 <= int(found.group(1)) <= int(found.group(2)):
            raise InputError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/3")
        return cls(int(found.group(1)), int(found.group(2)))

    def owns(self, ref: ConceptRef) -> bool:
        return shard_of(ref.name, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class JournalMirror:
    """The prediction journal's entries, mirrored in a folder of the default remote as they are written."""

    def __init__(self, repo: Repo) -> None:
        from . import dvcside

        self.folder = dvcside.RemoteFolder(repo, *JOURNAL_FOLDER)
        self.failed = 0  # entries that could not be mirrored
        self._lock = threading.Lock()

    def pull(self, journal: Journal, fingerprints: set[str]) -> int:
        """Bring the remote's entries for these fingerprints into the local journal where they are newer;
        how many were brought in. (A dead shard's in-flight predictions: the backend then resumes them, or
        finds a create that never answered by listing, as after any crash.)"""
        from ..journal import JournalEntry

        wanted = {f"{fp}.json": fp for fp in fingerprints}
        brought = 0
        for name in sorted(self.folder.names() & wanted.keys()):
            fp = wanted[name]
            try:
                data: Any = json.loads(self.folder.read(name))
                remote = JournalEntry.from_json({k: v for k, v in data.items() if k != "fingerprint"})
            except (OSError, ValueError, TypeError, AttributeError):
                continue  # unreadable there: the local journal (or listing) decides, as for a local bad entry
            with journal.lock(fp):
                local = journal.get(fp)
                if local is None or local.updated_at < remote.updated_at:
                    journal.record(fp, remote)
                    brought += 1
        return brought

    def push(self, fingerprint: str, blob: str) -> None:
        """`Journal.on_record`: one entry to the remote (from the worker thread that wrote it)."""
        try:
            self.folder.write(f"{fingerprint}.json", blob.encode("utf-8"))
        except Exception:  # noqa: BLE001 - the local journal still has it; the run reports how many failed
            with self._lock:
                self.failed += 1
