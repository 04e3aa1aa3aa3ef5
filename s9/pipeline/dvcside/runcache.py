"""DVC's local cache and run cache: what `dvc repro` would check out instead of running a stage, found and
restored without writing, and the run-cache key of a stage not written yet."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from .stages import _memory_scratch

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


def pull_run_cache(repo: Repo) -> None:
    """Fetch the default remote's run cache (`dvc repro --pull` does this first)."""
    from dvc.stage.cache import RunCacheNotSupported

    with contextlib.suppress(RunCacheNotSupported):
        repo.stage_cache.pull(None)


def _entry_for(stage: PipelineStage) -> dict[str, Any] | None:
    """The lock-style entry `dvc repro` would check out instead of running the stage: its recorded outs when
    its deps and definition are unchanged (outs missing or edited), else the newest run-cache entry for its
    current deps; None when neither exists."""
    from dvc.stage.cache import _can_hash
    from dvc.stage.serialize import to_single_stage_lockfile

    if not _can_hash(stage):
        return None
    if not stage.changed_stage() and stage.deps_cached() and all(bool(out.hash_info) for out in stage.outs):
        return to_single_stage_lockfile(stage)
    stage.save_deps()
    return stage.repo.stage_cache._load(stage)


def restore(stage: PipelineStage, *, pull: bool) -> bool:
    """Bring a stale stage up to date without running its command, as `dvc repro [--pull]` does: find its
    entry (recorded outs or run cache), with `pull` fetch the objects the default remote has, and only when
    every out is in the local cache replace the workspace outs with them (never deleting outs first that
    could not be restored). True when restored; the caller records the stage."""
    from dvc.exceptions import CollectCacheError, DvcException

    entry = _entry_for(stage)
    if not entry:
        return False
    cache = stage.repo.stage_cache
    cached_stage = cache._create_stage(entry, wdir=stage.wdir)
    if pull:
        try:
            for objs in cached_stage.get_used_objs().values():
                stage.repo.cloud.pull(objs)
        except (CollectCacheError, DvcException, OSError):
            return False  # a remote that cannot be reached must not stop generation
    if not cached_stage.outs_cached():
        return False
    with _memory_scratch():
        stage.remove_outs(ignore_remove=False, force=True)
        cached_stage.checkout()
    return True


def pipeline_data(decl: Any) -> dict[str, Any]:
    """A concept's expected pipeline file, parsed (once per concept for `virtual_stage`)."""
    import yaml

    return yaml.safe_load(decl.render())


def virtual_stage(repo: Repo, decl: Any, name: str, entry: dict[str, Any],
                  pipeline: dict[str, Any] | None = None) -> PipelineStage | None:
    """A concept's stage as its expected (not yet written) pipeline declares it, with its params deps given
    the expected scene input instead of read from inputs.json and its file deps hashed now: what the stage
    will be after `s9 repro` syncs and resolves, so its run-cache key can be looked up without writing.
    None when a dependency cannot be hashed (e.g. a missing frame). `pipeline`: `pipeline_data(decl)`."""
    from dvc.dependency.param import ParamsDependency
    from dvc.dvcfile import ProjectFile
    from dvc.stage.loader import StageLoader

    data = (pipeline or pipeline_data(decl))["stages"][name]
    dvcfile = ProjectFile(repo, os.path.join(repo.root_dir, decl.ref.dvc_file))
    stage = StageLoader.load_stage(dvcfile, name, data)
    try:
        for dep in stage.deps:
            if isinstance(dep, ParamsDependency):
                dep.fill_values({name: entry})
            else:
                dep.save()
    except Exception:  # noqa: BLE001 - a dep that cannot be hashed: there is no run to find
        return None
    return stage


def _run_key(stage: PipelineStage) -> str:
    """The stage's run-cache key from the dep values set on it (DVC's `_get_stage_hash` would re-read them)."""
    from dvc.stage.cache import _get_cache_hash
    from dvc.stage.serialize import to_single_stage_lockfile

    return _get_cache_hash(to_single_stage_lockfile(stage), key=True)


def has_local_run_cache(repo: Repo) -> bool:
    """Whether DVC's local run cache holds any entry at all (when not, no scene can be restored from it)."""
    folder = repo.stage_cache.cache_dir
    return os.path.isdir(folder) and any(os.scandir(folder))


def local_run_cache_entry(stage: PipelineStage) -> dict[str, Any] | None:
    """The newest local run-cache entry for the stage's deps as they are set on it (not re-read)."""
    cache = stage.repo.stage_cache
    key = _run_key(stage)
    folder = cache._get_cache_dir(key)
    if not os.path.isdir(folder):
        return None
    newest = max(os.listdir(folder), key=lambda f: os.path.getmtime(os.path.join(folder, f)), default=None)
    return cache._load_cache(key, newest) if newest else None


def entry_cached(repo: Repo, entry: dict[str, Any]) -> bool:
    """Every out of a lock-style entry is in the local cache."""
    return all(out.get("md5") and cached(repo, out["md5"]) for out in entry.get("outs", []))


def cached(repo: Repo, md5: str) -> bool:
    """Whether an object (file md5, or `.dir` md5 with every file it lists) is in the local cache."""
    from dvc_data.hashfile.hash_info import HashInfo

    odb = repo.cache.local
    if not odb.exists(md5):
        return False
    if not md5.endswith(".dir"):
        return True
    from dvc_data.hashfile.tree import Tree

    try:
        tree = Tree.load(odb, HashInfo("md5", md5))
    except Exception:  # noqa: BLE001 - unreadable listing: treat as not cached
        return False
    return all(odb.exists(entry_hash.value) for _, _, entry_hash in tree)
