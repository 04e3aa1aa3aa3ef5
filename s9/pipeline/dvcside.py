"""The few DVC API calls s9 needs, in one place: open the repo, load single stages, the run cache, commit.

`dvc repro` re-collects its graph around every stage (quadratic in stage count); here one `Repo` instance
loads only the stages that are stale (lazily, through the project file's stage loader), and records them
with the same calls `dvc repro` / `dvc commit -f` make per stage (`save` then `commit`) plus a single
dvc.lock write, so bookkeeping is linear.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, InputError
from .registry import DVC_FILE

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


@contextlib.contextmanager
def open_repo(root: Path, *, lock: bool) -> Iterator[Repo]:
    """A `Repo` at root; with `lock`, holding DVC's repo lock (as `dvc repro` does) and its scm context,
    so `.gitignore` entries for new outs are written and `core.autostage` is honoured."""
    from dvc.exceptions import DvcException
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    try:
        with Repo(str(root)) as repo, _param_files_read_once():
            if not lock:
                yield repo
                return
            with repo.scm_context(quiet=True), lock_repo(repo):
                yield repo
    except LockError as exc:
        raise InputError(f"{root}: DVC repository is busy ({exc}); is another dvc or s9 repro running?") from None
    except DvcException as exc:  # errors are values until the CLI: one line, not a DVC traceback
        raise GenerationError(f"dvc: {exc}") from exc


@contextlib.contextmanager
def _param_files_read_once() -> Iterator[None]:
    """DVC re-parses params.yaml (ruamel, ~5 ms) for every params dep of every stage, several times per stage
    while saving: ~30 ms a scene. Within one s9 command the parse is memoized per file *and* its stat, so a file
    that changes is read again; callers get a deep copy, so nothing DVC does to a result can leak."""
    import copy

    from dvc.dependency import param

    original = param.load_path
    memo: dict[tuple, Any] = {}

    def load_path(path: str, fs: Any, **kwargs: Any) -> Any:
        if getattr(fs, "protocol", None) != "local":  # e.g. a git revision's fs: not this working tree
            return original(path, fs, **kwargs)
        try:
            st = os.stat(path)
        except OSError:
            return original(path, fs, **kwargs)
        key = (path, st.st_ino, st.st_mtime_ns, st.st_size, tuple(sorted(kwargs.items())))
        if key not in memo:
            memo[key] = original(path, fs, **kwargs)
        return copy.deepcopy(memo[key])

    param.load_path = load_path
    try:
        yield
    finally:
        param.load_path = original


def load_stages(repo: Repo, names: list[str]) -> dict[str, PipelineStage]:
    """Only the named stages of dvc.yaml, each resolved and filled from dvc.lock once."""
    from dvc.dvcfile import ProjectFile

    loader = ProjectFile(repo, os.path.join(repo.root_dir, DVC_FILE)).stages
    return {name: loader[name] for name in names}


def run_cache_stage(repo: Repo, stage: PipelineStage) -> Any | None:
    """The cached run `dvc repro` would restore instead of running `stage`, or None.

    Same rule as DVC's `StageCache.restore`: deps unchanged and outs known → the lock's own outs; otherwise
    a run-cache entry for the current deps. Either way every out must be in the local cache.
    """
    from dvc.stage.cache import _can_hash
    from dvc.stage.serialize import to_single_stage_lockfile

    if not _can_hash(stage):
        return None
    if not stage.changed_stage() and stage.deps_cached() and all(bool(out.hash_info) for out in stage.outs):
        cache = to_single_stage_lockfile(stage)
    else:
        stage.save_deps()
        cache = repo.stage_cache._load(stage)
        if not cache:
            return None
    cached = repo.stage_cache._create_stage(cache, wdir=stage.wdir)
    return cached if cached.outs_cached() else None


def restore(cached: Any) -> None:
    cached.checkout()


def remove_outs(stage: PipelineStage) -> None:
    """What `dvc repro` does before running a stage: outs go (they are in the cache if ever committed)."""
    stage.remove_outs(ignore_remove=False, force=True)


def record(stages: list[PipelineStage]) -> None:
    """Hash, cache and lock the given stages: `dvc repro`'s per-stage `save` + `commit`, one dvc.lock write."""
    for stage in stages:
        stage.save()  # also records the run in DVC's run cache, like `dvc repro`
        stage.commit()
    if stages:
        stages[0].dvcfile.dump_stages(stages, update_pipeline=False)
