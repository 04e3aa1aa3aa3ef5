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


class HashCache:
    """md5 by (inode, mtime_ns, size); `save()` persists it under `.s9/` (a cache: losing it costs time only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.dirty = False
        if path and path.exists():
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self.entries = loaded

    def md5(self, path: Path, st: os.stat_result | None = None) -> str:
        st = st or path.stat()
        key = str(path)
        stamp = [st.st_ino, st.st_mtime_ns, st.st_size]
        cached = self.entries.get(key)
        if cached and cached[:3] == stamp:
            return cached[3]
        value = file_md5(path)
        self.entries[key] = [*stamp, value]
        self.dirty = True
        return value

    def remember(self, path: Path, st: os.stat_result, md5: str) -> None:
        """Record a hash someone else just computed (DVC, when it saved an out)."""
        self.entries[str(path)] = [st.st_ino, st.st_mtime_ns, st.st_size, md5]
        self.dirty = True

    def dir_hash(self, folder: Path) -> DirHash:
        """Hash every file under `folder` (s9 repos have no `.dvcignore` rules inside outputs)."""
        rows = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
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
