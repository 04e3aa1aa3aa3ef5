"""Which scene stages are stale and why, computed from dvc.lock and the files, without DVC's own machinery.

`dvc status` takes ~10 s at 500 stages; this reads the lock once (cached parse), renders each stage from
dvc.yaml's `foreach` template, compares params values with `!=` like DVC, and compares file hashes from a
stat-keyed cache, so a no-op check at 500 scenes takes well under a second or two. Tests hold it to
agreeing with `dvc status` case by case.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..params import PARAMS_FILE
from ..state import state_dir
from ..yamlio import expect_mapping, parse_yaml, read_yaml, shown
from .hashing import HashCache
from .lockfile import read_lock
from .registry import DVC_FILE, STAGE_GROUP, VARS_FILE, SceneEntry, read_entries

# Reason kinds, in the order a person would want to fix them.
KINDS = ("new", "command", "prompt", "moved", "frame", "params", "dep", "output")


@dataclass(frozen=True)
class Reason:
    kind: str  # one of KINDS
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass
class SceneStatus:
    entry: SceneEntry
    reasons: list[Reason] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    @property
    def moved_only(self) -> bool:
        """Only the prompt entry's list index changed: the clip is still right, its lock entry needs the new key."""
        return self.stale and all(r.kind == "moved" for r in self.reasons)


@dataclass
class StatusReport:
    scenes: list[SceneStatus]

    @property
    def stale(self) -> list[SceneStatus]:
        return [s for s in self.scenes if s.stale]

    @property
    def up_to_date(self) -> bool:
        return not self.stale

    def by_concept(self) -> dict[str, list[SceneStatus]]:
        grouped: dict[str, list[SceneStatus]] = {}
        for scene in self.stale:
            grouped.setdefault(scene.entry.concept, []).append(scene)
        return grouped

    def as_dict(self) -> dict[str, Any]:
        return {
            "up_to_date": self.up_to_date,
            "scenes": len(self.scenes),
            "stale": len(self.stale),
            "concepts": {
                concept: {
                    "batch": scenes[0].entry.batch,
                    "stale": [
                        {
                            "stage": s.entry.stage,
                            "scene": s.entry.scene,
                            "clip": s.entry.clip,
                            "reasons": [r.as_dict() for r in s.reasons],
                        }
                        for s in scenes
                    ],
                }
                for concept, scenes in self.by_concept().items()
            },
        }


# -- rendering the foreach template the way DVC does for the parts s9 uses -------------------------------
_INTERP = re.compile(r"\$\{\s*([A-Za-z0-9_.@-]+)\s*\}")


_MISSING = object()


def _param_value(data: Any, key: str) -> Any:
    value = data
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _lookup(context: dict[str, Any], expr: str) -> Any:
    value = _param_value(context, expr)
    if value is _MISSING:
        raise InputError(f"{DVC_FILE}: cannot resolve ${{{expr}}} (s9 status resolves item, key and vars)")
    return value


def _render(node: Any, context: dict[str, Any]) -> Any:
    if isinstance(node, str):
        whole = _INTERP.fullmatch(node.strip())
        if whole:
            return _lookup(context, whole.group(1))
        return _INTERP.sub(lambda m: _to_str(_lookup(context, m.group(1))), node)
    if isinstance(node, list):
        return [_render(v, context) for v in node]
    if isinstance(node, dict):
        return {_render(k, context): _render(v, context) for k, v in node.items()}
    return node


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_template(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """dvc.yaml's scene `do` template and the global context (vars files and params.yaml)."""
    path = root / DVC_FILE
    dvc_yaml = _mapping_file(path, "the top level")
    stage = expect_mapping(expect_mapping(dvc_yaml.get("stages"), path, "`stages`").get(STAGE_GROUP), path,
                           f"stage `{STAGE_GROUP}`")
    if not isinstance(stage.get("do"), dict):
        raise InputError(f"{shown(path)}: no `{STAGE_GROUP}` foreach stage (run `s9 sync` in a new repo)")
    context: dict[str, Any] = {}
    if (root / PARAMS_FILE).exists():  # DVC loads params.yaml into the context by default
        context.update(_mapping_file(root / PARAMS_FILE, "the top level"))
    listed = dvc_yaml.get("vars") or []
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, str) and item != VARS_FILE and (root / item).exists():
            context.update(_mapping_file(root / item, "the top level (a vars file of dvc.yaml)"))
        elif isinstance(item, dict):
            context.update(item)
    return stage["do"], context


def _mapping_file(path: Path, what: str) -> dict[str, Any]:
    return expect_mapping(read_yaml(path, parse_yaml), path, what)


def _out_path(out: Any) -> str:
    return next(iter(out)) if isinstance(out, dict) else str(out)


# -- params, read as DVC reads them -------------------------------------------------------------------------
class _ParamFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.loaded: dict[str, Any] = {}

    def get(self, path: str) -> Any:
        if path not in self.loaded:
            full = self.root / path
            if not full.is_file():
                self.loaded[path] = None
                return None
            if full.suffix == ".json":
                try:
                    self.loaded[path] = json.loads(full.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise InputError(f"{path}: cannot parse ({exc})") from None
            else:
                self.loaded[path] = read_yaml(full, parse_yaml) or {}
        return self.loaded[path]


def _dvc_cache_dir(root: Path) -> Path:
    """Where DVC keeps objects: `cache.dir` from .dvc/config(.local) when set, else .dvc/cache."""
    found = root / ".dvc" / "cache"
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if not path.exists():
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            value = Path(parser.get("cache", "dir").strip().strip("'\""))
            found = value if value.is_absolute() else (root / ".dvc" / value).resolve()
    return found / "files" / "md5"


class _Checker:
    def __init__(self, root: Path, hashes: HashCache) -> None:
        self.root = root
        self.hashes = hashes
        self.params = _ParamFiles(root)
        self.cache = _dvc_cache_dir(root)

    def in_cache(self, md5: str) -> bool:
        obj = self.cache / md5[:2] / md5[2:]
        if not md5.endswith(".dir"):
            return obj.exists()
        try:
            listing = json.loads(obj.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return all((self.cache / e["md5"][:2] / e["md5"][2:]).exists() for e in listing)

    def scene(self, entry: SceneEntry, stage: dict[str, Any], locked: dict[str, Any] | None,
              outputs: bool = True) -> list[Reason]:
        if locked is None:
            return [Reason("new", "not generated yet (no dvc.lock entry)")]
        reasons: list[Reason] = []
        if stage.get("cmd") != locked.get("cmd"):
            reasons.append(Reason("command", "stage command changed"))
        reasons += self._params(entry, stage.get("params") or [], locked.get("params") or {})
        reasons += self._deps(entry, stage.get("deps") or [], locked.get("deps") or [])
        if outputs:
            reasons += self._outs(stage.get("outs") or [], locked.get("outs") or [])
        return reasons

    def _params(self, entry: SceneEntry, declared: list[Any], locked: dict[str, Any]) -> list[Reason]:
        wanted: dict[str, list[str]] = {}
        for item in declared:
            if isinstance(item, str):
                wanted.setdefault(PARAMS_FILE, []).append(item)
            elif isinstance(item, dict):
                for path, keys in item.items():
                    wanted.setdefault(path, []).extend(keys or [])
        reasons = []
        for path, keys in wanted.items():
            data = self.params.get(path)
            kind = "prompt" if path == entry.prompts else "params"
            what = "prompt entry" if kind == "prompt" else f"{path}:"
            if data is None:
                reasons.append(Reason(kind, f"{path} missing"))
                continue
            old = locked.get(path)
            changes = []
            for key in keys:
                value = _param_value(data, key)
                if value is _MISSING:
                    changes.append(f"{key} deleted")
                elif old is None or key not in old:
                    moved_from = [k for k, v in (old or {}).items() if k not in keys and v == value]
                    if kind == "prompt" and len(old or {}) == 1 and moved_from:
                        # A scene removed or inserted before this one renumbers its list index: DVC sees a
                        # new params key, but the entry is byte-for-byte what the clip was made from.
                        reasons.append(Reason("moved", f"prompt entry moved {moved_from[0]} -> {key}, unchanged"))
                        continue
                    changes.append(f"{key} new")
                elif value != old[key] and not (isinstance(value, tuple) and list(value) == old[key]):
                    changes.append(f"{key} modified")
            if changes:
                reasons.append(Reason(kind, f"{what} {', '.join(changes)}"))
        return reasons

    def _deps(self, entry: SceneEntry, declared: list[Any], locked: list[dict[str, Any]]) -> list[Reason]:
        by_path = {d.get("path"): d for d in locked}
        reasons = []
        for dep in declared:
            path = _out_path(dep)
            kind = "frame" if path == entry.frame else "dep"
            what = "first frame" if kind == "frame" else path
            state = self._file_state(path, by_path.get(path))
            if state:
                reasons.append(Reason(kind, f"{what} {state}"))
        return reasons

    def _outs(self, declared: list[Any], locked: list[dict[str, Any]]) -> list[Reason]:
        by_path = {o.get("path"): o for o in locked}
        reasons = []
        for out in declared:
            path = _out_path(out)
            old = by_path.get(path)
            md5 = (old or {}).get("md5")
            if md5 and not self.in_cache(md5):
                reasons.append(Reason("output", f"{path} not in DVC cache (`dvc pull`, or `s9 repro`)"))
                continue
            state = self._file_state(path, old)
            if state:
                reasons.append(Reason("output", f"{path} {state}"))
        return reasons

    def _file_state(self, path: str, old: dict[str, Any] | None) -> str | None:
        full = self.root / path
        if not full.exists():
            return "missing"
        current = self.hashes.dir_hash(full).md5 if full.is_dir() else self.hashes.md5(full)
        if old is None or not old.get("md5"):
            return "new"
        return "modified" if current != old["md5"] else None


def select(entries: list[SceneEntry], targets: list[str] | None) -> list[SceneEntry]:
    """Entries named by targets: stage names (`scene@x_p1`, `x_p1`, `dvc.yaml:scene@x_p1`), concept names,
    or `scene` for all; none means all."""
    if not targets:
        return entries
    chosen: dict[str, SceneEntry] = {}
    for target in targets:
        name = target.split(":", 1)[1] if target.startswith(f"{DVC_FILE}:") else target
        hits = [e for e in entries if name in (e.stage, e.key, e.concept, STAGE_GROUP)]
        if not hits:
            raise InputError(f"{target}: no such scene stage or concept (see {VARS_FILE}, or `s9 sync`)")
        chosen.update((e.stage, e) for e in hits)
    return [e for e in entries if e.stage in chosen]


def compute_status(root: Path, targets: list[str] | None = None, *, outputs: bool = True) -> StatusReport:
    """Staleness of the scene stages as the vars file lists them now (call `sync` first to refresh it).

    With `outputs=False` the clips themselves are not looked at (missing, edited, not in the cache): only
    whether dvc.lock matches the prompts, frames, params and commands, which CI can check without `dvc pull`.
    """
    root = Path(root).resolve()
    entries = select(read_entries(root), targets)
    template, context = load_template(root)
    lock = read_lock(root)
    hashes = HashCache(state_dir(root) / "hashes.json")
    checker = _Checker(root, hashes)
    scenes = []
    for entry in entries:
        stage = _render(template, {**context, "item": entry.as_vars(), "key": entry.key})
        scenes.append(SceneStatus(entry, checker.scene(entry, stage, lock.get(entry.stage), outputs)))
    hashes.save()
    return StatusReport(scenes)
