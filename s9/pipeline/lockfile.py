"""Reading dvc.lock files fast, and pruning entries of stages that no longer exist.

DVC parses YAML with ruamel (YAML 1.2) and compares the values in dvc.lock with `!=`, so s9 reads them the
same way, with libyaml under YAML 1.2 rules (ruamel is slow: ~1.3 s for a 500-stage lock). A concept's parsed
lock is cached in its own state file (`s9.pipeline.memo`), keyed by the file's stat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..yamlio import expect_mapping, parse_yaml_fast, read_yaml, shown


def read_lock(root: Path, rel: Path | str) -> dict[str, dict]:
    """`stages` of one dvc.lock ({} when there is none); a file s9 cannot read is an `InputError`."""
    path = root / rel
    if not path.exists():
        return {}
    return check_lock(path, read_yaml(path, parse_yaml_fast))


def check_lock(path: Path, data: Any) -> dict[str, dict]:
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
