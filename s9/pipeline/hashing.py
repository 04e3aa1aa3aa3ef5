"""File and directory hashes exactly as DVC 3 records them in dvc.lock, with a stat-keyed cache.

A file's hash is the md5 of its raw bytes (`hash: md5`). A directory out's hash is DVC's `.dir` hash: the
md5 of the JSON list of its files' `{"md5", "relpath"}` sorted by relpath (dvc_data's `Tree.as_bytes`);
tests check both against what DVC writes. The cache maps a path to (inode, mtime_ns, size, md5), so a
no-op `s9 status` stats files instead of reading every clip.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text_atomic

_BLOCK = 1 << 20


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class DirHash:
    md5: str  # ends in ".dir", like dvc.lock
    size: int
    nfiles: int


def dir_md5(entries: list[tuple[str, str, int]]) -> DirHash:
    """DVC's hash of a directory from (relpath, md5, size) of each file in it."""
    listing = sorted(({"md5": md5, "relpath": rel} for rel, md5, _ in entries), key=lambda e: e["relpath"])
    blob = json.dumps(listing, sort_keys=True).encode("utf-8")
    return DirHash(hashlib.md5(blob).hexdigest() + ".dir", sum(size for _, _, size in entries), len(entries))


def stamp(st: os.stat_result) -> list[int]:
    """What says a file (or folder) is unchanged since it was last looked at: inode, mtime and size."""
    return [st.st_ino, st.st_mtime_ns, st.st_size]


class HashCache:
    """md5 by (inode, mtime_ns, size); `save()` persists it (a cache: losing it costs time only).

    With `root`, entries are keyed by the path relative to it (the per-concept state keeps its own entries,
    `s9.pipeline.memo`). `seen`, when set to a dict, collects the stamp of every file and folder looked at:
    what a concept's status was computed from."""

    def __init__(self, path: Path | None, *, root: Path | None = None, entries: dict[str, list] | None = None) -> None:
        self.path = path
        self.root = root
        self.entries: dict[str, list] = entries if isinstance(entries, dict) else {}
        self.dirty = False
        self.seen: dict[str, list[int] | None] | None = None
        if path and path.exists() and entries is None:
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self.entries = loaded

    def key(self, path: Path) -> str:
        return os.path.relpath(path, self.root) if self.root is not None else str(path)

    def md5(self, path: Path, st: os.stat_result | None = None) -> str:
        st = st or path.stat()
        key = self.key(path)
        now = stamp(st)
        if self.seen is not None:
            self.seen[key] = now
        cached = self.entries.get(key)
        if cached and cached[:3] == now:
            return cached[3]
        value = file_md5(path)
        self.entries[key] = [*now, value]
        self.dirty = True
        return value

    def remember(self, path: Path, st: os.stat_result, md5: str) -> None:
        """Record a hash someone else just computed (DVC, when it saved an out)."""
        self.entries[self.key(path)] = [*stamp(st), md5]
        self.dirty = True

    def dir_hash(self, folder: Path) -> DirHash:
        """Hash every file under `folder` (s9 repos have no `.dvcignore` rules inside outputs)."""
        rows = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            if self.seen is not None:  # a file added or removed changes its folder's mtime
                self.seen[self.key(Path(dirpath))] = stamp(os.stat(dirpath))
            for name in filenames:
                full = Path(dirpath) / name
                rel = full.relative_to(folder).as_posix()
                st = full.stat()
                rows.append((rel, self.md5(full, st), st.st_size))
        return dir_md5(rows)

    def save(self) -> None:
        if not (self.path and self.dirty):
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(self.entries, separators=(",", ":")))
        self.dirty = False
