"""s9's own state for one concept: `.s9/concepts/{batch}/{concept}.json`, holding the file hashes of its
inputs and outputs (keyed by stat), its parsed dvc.lock (keyed by stat), and the memo of its last clean
status.

One small file per concept, read when that concept is looked at and dropped after, so what a command holds in
memory does not grow with the repository, and `s9 add` reads only the concept it adds.

The memo says: the last time this concept was checked, every scene was up to date and nothing undeclared was
in its outputs folder, and here is every file and folder that verdict was computed from, with its stat. When
none of them changed (same inode, mtime and size: the test DVC's own state database uses for file hashes),
and neither did params.yaml, s9's code, the DVC and rendering libraries nor DVC's cache folder (the memo's
key), the verdict still holds; `s9 status` then stats a few files per scene instead of parsing and hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..state import STATE_DIR, state_dir
from ..yamlio import parse_yaml_fast, read_yaml
from .hashing import HashCache, stamp
from .layout import ConceptRef

CONCEPTS_DIR = "concepts"  # under .s9/
# The libraries whose versions can change a verdict: DVC's lock format and hashing, the offline renderer's
# bytes (its identity is part of every offline scene's input).
_LIBRARIES = ("dvc", "dvc-data", "av", "pillow", "numpy")


@lru_cache(maxsize=1)
def code_identity() -> str:
    """s9's code (every file of the package, by name, size and mtime), the library versions above and the
    machine's architecture: a change to any of them makes every memo stale."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json", ".tmpl", ".ttf"):
            st = path.stat()
            digest.update(f"{path.relative_to(package)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for name in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{name}={metadata.version(name)}\n".encode())
    digest.update(platform.machine().encode())
    return digest.hexdigest()


def memo_key(root: Path, params_text: bytes, cache_dir: Path) -> str:
    """What every concept's verdict depends on besides its own files."""
    digest = hashlib.sha256(code_identity().encode())
    digest.update(hashlib.sha256(params_text).digest())
    digest.update(str(cache_dir).encode())
    return digest.hexdigest()


class ConceptState:
    """The state file of one concept; `save()` writes it back when something changed."""

    def __init__(self, root: Path, ref: ConceptRef) -> None:
        self.root = root
        self.ref = ref
        self.path = root / STATE_DIR / CONCEPTS_DIR / ref.batch / f"{ref.name}.json"
        data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                data = loaded
        self.hashes = HashCache(None, root=root, entries=data.get("hashes") if isinstance(data.get("hashes"), dict)
                                else {})
        self._lock: list | None = data.get("lock") if isinstance(data.get("lock"), list) else None
        self.fresh: dict[str, Any] | None = data.get("fresh") if isinstance(data.get("fresh"), dict) else None
        self._dirty = False

    # -- dvc.lock ---------------------------------------------------------------------------------------------
    def lock_stages(self) -> dict[str, dict]:
        """`stages` of the concept's dvc.lock ({} when there is none), parsed once per change of the file."""
        from .lockfile import check_lock

        path = self.root / self.ref.lock_file
        seen = self.hashes.seen
        try:
            st = path.stat()
        except FileNotFoundError:
            if seen is not None:
                seen[self.ref.lock_file.as_posix()] = None
            if self._lock is not None:
                self._lock, self._dirty = None, True
            return {}
        now = stamp(st)
        if seen is not None:
            seen[self.ref.lock_file.as_posix()] = now
        if self._lock is not None and len(self._lock) == 2 and self._lock[0] == now:
            return self._lock[1]
        stages = check_lock(path, read_yaml(path, parse_yaml_fast))
        self._lock, self._dirty = [now, stages], True
        return stages

    # -- the memo ---------------------------------------------------------------------------------------------
    def fresh_scenes(self, key: str, outputs: bool) -> int | None:
        """The concept's scene count when its memo holds (under `key`, outputs checked if asked), else None."""
        memo = self.fresh
        if not memo or memo.get("key") != key or (outputs and not memo.get("outputs")):
            return None
        stamps = memo.get("stamps")
        if not isinstance(stamps, dict):
            return None
        base = f"{self.root}{os.sep}"  # not os.path.join: this loop is most of a warm `s9 status`
        for rel, expected in stamps.items():
            try:
                st = os.stat(base + rel)
            except OSError:
                if expected is not None:
                    return None
                continue
            if expected is None or (expected is not True and stamp(st) != expected):
                return None
        scenes = memo.get("scenes")
        return scenes if isinstance(scenes, int) else None

    def watch(self) -> None:
        """Start collecting the stamps of what the concept's status is computed from."""
        self.hashes.seen = {}

    def remember_fresh(self, key: str, outputs: bool, scenes: int, extra: dict[str, list[int] | bool | None]) -> None:
        """The concept was just found up to date from the files watched since `watch()` (plus `extra`)."""
        stamps = {**(self.hashes.seen or {}), **extra}
        self.fresh = {"key": key, "outputs": outputs, "scenes": scenes, "stamps": stamps}
        self._dirty = True

    def forget_fresh(self) -> None:
        if self.fresh is not None:
            self.fresh, self._dirty = None, True

    def forget_fresh_now(self) -> None:
        """Drop the memo and write the state at once."""
        self.forget_fresh()
        self.save()

    def save(self) -> None:
        self.hashes.seen = None
        if not (self._dirty or self.hashes.dirty):
            return
        data = {"hashes": self.hashes.entries, "lock": self._lock, "fresh": self.fresh}
        with contextlib.suppress(OSError, ValueError, TypeError):  # a cache: failing to write it costs time only
            state_dir(self.root)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(data, separators=(",", ":")))
        self._dirty = self.hashes.dirty = False


def forget(root: Path, ref: ConceptRef) -> None:
    """Drop a concept's state (it was removed)."""
    with contextlib.suppress(OSError):
        (root / STATE_DIR / CONCEPTS_DIR / ref.batch / f"{ref.name}.json").unlink()
