"""Experiments: `s9 exp run -S key=value [--queue | --temp] [-n NAME]`.

Plain `dvc exp run -S video_settings.<key>=…` works for every key but the model (and the outputs folder):
those rename the clips, which DVC templating cannot derive, so the pipeline files must be regenerated before
DVC loads them. `s9 exp run` does that: under DVC's repo lock it applies the `-S` values to params.yaml the
way DVC does (YAML 1.2 round trip), syncs the pipelines, and then
- runs the experiment in the workspace with `s9 repro` (in parallel) and saves it as `dvc exp save` does, or
- with `--queue` / `--temp` hands the prepared workspace to DVC (`dvc exp run --queue` / `--temp`) and puts
  the workspace files back as they were.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..params import PARAMS_FILE
from ..runner import Listener
from ..yamlio import parse_yaml
from . import dvcside
from .declare import project_settings
from .layout import DVC_FILE, LOCK_FILE, PIPELINES_ROOT
from .register import sync_locked
from .run import ReproResult, repro_locked


@dataclass
class ExpResult:
    mode: str  # workspace | queue | temp
    name: str | None  # the experiment's name (workspace: its commit's ref name)
    repro: ReproResult | None = None  # the workspace run


def parse_override(text: str) -> tuple[list[str], Any]:
    """`video_settings.aspect_ratio=9:16` -> (["video_settings", "aspect_ratio"], "9:16"), the value read as
    YAML 1.2 as DVC reads it (`9:16` stays text, `5` is a number, `true` a boolean)."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise InputError(f"-S {text!r}: expected KEY=VALUE with a dotted params.yaml key, "
                         "e.g. video_settings.video_model=openai/sora-2")
    if ":" in parts[0] and parts[0].split(":", 1)[0] != PARAMS_FILE:
        raise InputError(f"-S {text!r}: s9 exp run sets keys of {PARAMS_FILE} only")
    parts[0] = parts[0].removeprefix(f"{PARAMS_FILE}:")
    value = parse_yaml(raw) if raw.strip() else ""
    return parts, value


def apply_overrides(root: Path, overrides: list[str]) -> None:
    """Set each `-S` value in params.yaml with DVC's own YAML round trip (comments kept)."""
    parsed = [parse_override(text) for text in overrides]
    with dvcside.edit_yaml(root, root / PARAMS_FILE) as data:
        for parts, value in parsed:
            node = data
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[parts[-1]] = value


def _snapshot(root: Path) -> dict[Path, bytes | None]:
    """The bytes of every file an experiment prepares (params.yaml and the pipeline files)."""
    files = [root / PARAMS_FILE, root / DVC_FILE, root / LOCK_FILE]
    base = root / PIPELINES_ROOT
    if base.is_dir():
        files += [p for p in base.glob("*/*/*") if p.is_file()]
    return {path: path.read_bytes() if path.exists() else None for path in files}


def _put_back(root: Path, before: dict[Path, bytes | None]) -> None:
    after = _snapshot(root)
    for path in set(before) | set(after):
        old = before.get(path)
        if old is None:
            path.unlink(missing_ok=True)
        elif after.get(path) != old:
            path.write_bytes(old)


def exp_run(root: Path, overrides: list[str], *, queue: bool = False, temp: bool = False, name: str | None = None,
            workers: int | None = None, listener: Listener | None = None) -> ExpResult:
    if queue and temp:
        raise InputError("--queue and --temp: choose one")
    root = Path(root).resolve()
    with contextlib.chdir(root):
        with dvcside.open_repo(root, lock=True) as repo:
            before = _snapshot(root)
            try:
                apply_overrides(root, overrides)
                settings = project_settings(root)  # a bad value is one line, and params.yaml is put back
            except BaseException:
                _put_back(root, before)
                raise
            if not (queue or temp):
                result = repro_locked(repo, root, workers=workers, listener=listener)
            else:
                sync_locked(root, repo, settings, tidy=False)  # the clips in the workspace stay as they are
        # DVC's experiment commands take the repo lock themselves, from Repo instances of their own.
        if not (queue or temp):
            saved = dvcside.exp_save(root, name) if result.ok else None
            return ExpResult("workspace", saved and name, result)
        try:
            dvcside.exp_run(root, queue=queue, tmp_dir=temp, name=name)
        finally:
            with dvcside.open_repo(root, lock=True):
                _put_back(root, before)
        return ExpResult("queue" if queue else "temp", name)
