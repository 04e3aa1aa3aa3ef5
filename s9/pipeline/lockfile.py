"""Reading the concepts' dvc.lock files fast, and pruning entries of stages that no longer exist.

DVC parses YAML with ruamel (YAML 1.2) and compares the values in dvc.lock with `!=`, so s9 reads them the
same way. ruamel is slow (~1.3 s for a 500-stage lock), so each parsed lock is cached as JSON under `.s9/`,
keyed by the file's stat (JSON, not pickle: a cache file must never be able to run code).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..errors import InputError
from ..state import STATE_DIR, state_dir
from ..yamlio import expect_mapping, parse_yaml_fast, read_yaml, shown

_CACHE = "locks.json"


class LockReader:
    """Parsed `stages` of lock files by repo-relative path, with the stat-keyed cache; `save()` persists it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._path = root / STATE_DIR / _CACHE
        self._cache: dict[str, Any] = {}
        self._dirty = False
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self._path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._cache = loaded

    def stages(self, rel: Path | str) -> dict[str, dict]:
        """`stages` of one dvc.lock ({} when there is none); a file s9 cannot read is an `InputError`."""
        key = Path(rel).as_posix()
        path = self.root / key
        try:
            st = path.stat()
        except FileNotFoundError:
            if self._cache.pop(key, None) is not None:
                self._dirty = True
            return {}
        stamp = [st.st_ino, st.st_mtime_ns, st.st_size]
        cached = self._cache.get(key)
        if isinstance(cached, list) and len(cached) == 2 and cached[0] == stamp:
            return cached[1]
        stages = _check_lock(path, read_yaml(path, parse_yaml_fast))
        self._cache[key] = [stamp, stages]
        self._dirty = True
        return stages

    def save(self) -> None:
        if not self._dirty:
            return
        with contextlib.suppress(OSError, ValueError, TypeError):  # an unserialisable value only costs the cache
            state_dir(self.root)
            write_text_atomic(self._path, json.dumps(self._cache, separators=(",", ":")))
        self._dirty = False


def read_lock(root: Path, rel: Path | str) -> dict[str, dict]:
    reader = LockReader(root)
    try:
        return reader.stages(rel)
    finally:
        reader.save()


def _check_lock(path: Path, data: Any) -> dict[str, dict]:
    """The parts of dvc.lock that s9 reads must have DVC's shapes (DVC checks the whole schema when it loads)."""
    stages = expect_mapping(expect_mapping(data, path, "the top level").get("stages"), path, "`stages`")
    for name, stage in stages.items():
        where = f"stage {name!r}"
        stage = expect_mapping(stage, path, where)
        for dep_file, values in expect_mapping(stage.get("params"), path, f"{where} `params`").items():
            expect_mapping(values, path, f"{where} `params` of {dep_file}")
        for kind in ("deps", "outs"):
            items = stage.get(kind) or []
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise InputError(f"{shown(path)}: expected {where} `{kind}` to be a list of mappings (path, md5, …)")
    return stages


def prune_lock(root: Path, rel: Path | str, keep: set[str]) -> list[str]:
    """Drop the entries of stages not in `keep` (scenes that were removed) with DVC's own YAML round-trip, so
    the rest of the file is untouched. The caller holds DVC's repo lock."""
    stale = [name for name in read_lock(root, rel) if name not in keep]
    if not stale:
        return []
    from . import dvcside

    with dvcside.edit_yaml(root, root / rel) as data:
        for name in stale:
            (data.get("stages") or {}).pop(name, None)
    return stale
