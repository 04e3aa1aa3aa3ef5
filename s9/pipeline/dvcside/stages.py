"""Loading a concept's stages lazily, recording one as `dvc repro` does (deps, outs, run cache, commit), writing
the lock, and what DVC keeps in memory while it does."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .repo import dvc_errors

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


def load_stages(repo: Repo, dvc_file: Path, names: list[str]) -> dict[str, PipelineStage]:
    """Only the named stages of one pipeline file, each filled from its dvc.lock."""
    return stage_loader(repo, dvc_file)(names)


def stage_loader(repo: Repo, dvc_file: Path) -> Callable[[list[str]], dict[str, PipelineStage]]:
    """`load_stages` for one pipeline file, its dvc.yaml and dvc.lock parsed now, once (DVC's round-trip YAML
    parser is most of the cost): each call builds the named stages from that parse. A stage's own lock entry
    is as it was then; what a stage records is written to the lock file as it is on disk at that time."""
    from dvc.dvcfile import ProjectFile

    loader = ProjectFile(repo, os.path.join(repo.root_dir, dvc_file)).stages  # both files are parsed here
    return lambda names: {name: loader[name] for name in names}


def dep_values(stage: PipelineStage) -> dict[str, Any]:
    """Read every dependency of the stage now (file hashes, params values), as DVC records them."""
    with dvc_errors(Path(stage.repo.root_dir)):
        stage.save_deps()
    return {dep.def_path: dep.hash_info.to_dict() for dep in stage.deps}


def record(stage: PipelineStage, expected_deps: dict[str, Any] | None = None, *, run_cache: bool = True) -> bool:
    """`dvc repro`'s bookkeeping for a stage that just ran: save deps, outs, its run-cache entry, commit outs
    to the cache. With `expected_deps`, only when the deps read now are exactly those (the inputs the clip was
    made from): otherwise nothing is saved (no lock entry, no run-cache entry) and False is returned.
    `run_cache=False` (a fresh take, `--new-take`): no run-cache entry, which would make a second answer to
    "these inputs made which clip?"; dvc.lock alone says which take is current."""
    deps = dep_values(stage)
    if expected_deps is not None and deps != expected_deps:
        return False
    with _memory_scratch():
        stage.save_outs()
        stage.md5 = stage.compute_md5()
        if run_cache:
            stage.repo.stage_cache.save(stage)
        stage.commit()
    return True


@contextlib.contextmanager
def _memory_scratch() -> Iterator[None]:
    """DVC stages a directory out's listing in fsspec's process-wide in-memory filesystem (`Tree.digest`, the
    staging ODB) and never removes it: a long run would keep every debug folder's listing. Once the outs are
    committed to the cache nothing reads those entries again, so what this block added is dropped."""
    from fsspec.implementations.memory import MemoryFileSystem

    store, dirs = MemoryFileSystem.store, MemoryFileSystem.pseudo_dirs
    keys, count = set(store), len(dirs)
    try:
        yield
    finally:
        for key in [k for k in store if k not in keys]:
            del store[key]
        del dirs[count:]


def forget_walked(repo: Repo) -> None:
    """DVC's .dvcignore filter remembers every folder it was asked about (a trie that grows with the outputs
    folders a long run visits); dropped, it is rebuilt from the .dvcignore files on next use."""
    repo.__dict__.pop("dvcignore", None)


def dump(stages: list[PipelineStage]) -> None:
    """Write the stages' lock entries, one write per pipeline file (stages of one file, in its order)."""
    if stages:
        stages[0].dvcfile.dump_stages(stages, update_pipeline=False)


def file_hashes(stage: PipelineStage) -> dict[str, str]:
    """Every file md5 DVC just computed for a recorded stage: file deps and outs, and the files inside
    directory outs, by repo-relative path (to warm s9's own hash cache, so the next status rehashes nothing)."""
    found: dict[str, str] = {}
    for item in [*stage.deps, *stage.outs]:
        info = getattr(item, "hash_info", None)
        if not info or not isinstance(info.value, str):
            continue  # params deps have values, not hashes
        if not info.isdir:
            found[item.def_path] = info.value
            continue
        obj = getattr(item, "obj", None)
        for key, _meta, entry in obj or []:
            found[f"{item.def_path}/{'/'.join(key)}"] = entry.value
    return found


def ignore_remove(repo: Repo, path: Path) -> None:
    """Drop the `.gitignore` entry DVC wrote for an out that no stage declares any more."""
    with contextlib.suppress(Exception):
        repo.scm_context.ignore_remove(str(path))
