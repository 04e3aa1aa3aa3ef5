"""Reading dvc.lock fast, and pruning entries of scene stages that no longer exist.

DVC parses YAML with ruamel (YAML 1.2: `yes` stays a string, `1:30` is not a number), and the values in
dvc.lock are compared with `!=`, so s9 reads both dvc.lock and params files the same way. ruamel is slow
(~1.3 s for a 500-stage lock), so the parsed lock is cached as JSON under `.s9/` keyed by the file's stat
(JSON, not pickle: a cache file must never be able to run code).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..errors import InputError
from ..state import STATE_DIR, state_dir
from ..yamlio import expect_mapping, parse_yaml, read_yaml, shown
from .registry import LOCK_FILE, STAGE_GROUP

__all__ = ["parse_yaml", "prune_lock", "read_lock"]

_CACHE = "lock.json"


def read_lock(root: Path) -> dict[str, dict]:
    """`stages` of dvc.lock ({} when there is none); a file s9 cannot read is an `InputError` naming it."""
    path = root / LOCK_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    cache = root / STATE_DIR / _CACHE
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if tuple(cached["stamp"]) == stamp:
            return cached["stages"]
    stages = _check_lock(path, read_yaml(path, parse_yaml))
    with contextlib.suppress(OSError, ValueError, TypeError):  # an unserialisable value only costs the cache
        state_dir(root)
        write_text_atomic(cache, json.dumps({"stamp": stamp, "stages": stages}))
    return stages


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


def prune_lock(root: Path, keep: set[str]) -> list[str]:
    """Drop dvc.lock entries of `scene@…` stages not in `keep` (scenes or concepts that were removed).

    Done under DVC's repo lock with DVC's own YAML round-trip, so the rest of the file is untouched.
    """
    stale = [name for name in read_lock(root) if name.startswith(f"{STAGE_GROUP}@") and name not in keep]
    if not stale:
        return []
    from dvc.repo import Repo, lock_repo
    from dvc.utils.serialize import modify_yaml

    from .dvcside import dvc_errors

    with dvc_errors(root), Repo(str(root)) as repo, lock_repo(repo), modify_yaml(str(root / LOCK_FILE)) as data:
        for name in stale:
            (data.get("stages") or {}).pop(name, None)
    return stale
