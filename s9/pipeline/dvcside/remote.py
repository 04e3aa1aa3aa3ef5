"""The default remote: whether it holds a stage's outputs or run, pushing one scene as `dvc push --run-cache`
would (outputs included), and a folder of s9's own files beside DVC's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .runcache import _run_key
from .stages import load_stages

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


def default_remote(repo: Repo) -> str | None:
    return repo.config["core"].get("remote") or None


def locked_outs_on_remote(repo: Repo, dvc_file: Path, name: str) -> bool:
    """Whether the outs dvc.lock records for a stage are on the default remote (a fresh clone's case)."""
    stage = load_stages(repo, dvc_file, [name])[name]
    hashes = [out.hash_info.value for out in stage.outs]
    return bool(hashes) and all(hashes) and _on_remote(repo, hashes)


def entry_on_remote(repo: Repo, entry: dict[str, Any]) -> bool:
    """Whether every out of a lock-style entry is on the default remote."""
    hashes = [out.get("md5") for out in entry.get("outs", [])]
    return bool(hashes) and all(hashes) and _on_remote(repo, hashes)


def _on_remote(repo: Repo, hashes: list[str]) -> bool:
    # A `.dir` object is uploaded after the files it lists, so its presence means the folder is there.
    try:
        odb = repo.cloud.get_remote_odb(None, "status")
        return all(odb.exists(h) for h in hashes)
    except Exception:  # noqa: BLE001 - an unreachable remote holds nothing we can count on
        return False


def remote_run_cache_entry(repo: Repo, stage: PipelineStage) -> dict[str, Any] | None:
    """The run-cache entry for the stage's deps (as set on it) on the default remote, read in place (nothing
    is written locally), or None."""
    from dvc.schema import COMPILED_LOCK_FILE_STAGE_SCHEMA
    from dvc.utils.serialize import parse_yaml

    key = _run_key(stage)
    try:
        odb = repo.cloud.get_remote_odb(None, "fetch --run-cache", hash_name="md5-dos2unix")
        fs = odb.fs
        folder = fs.join(odb.path, "runs", key[:2], key)
        for path in sorted(fs.find(folder)):
            with fs.open(path, "r", encoding="utf-8") as handle:
                return COMPILED_LOCK_FILE_STAGE_SCHEMA(parse_yaml(handle.read(), path))
    except Exception:  # noqa: BLE001 - no remote, no run cache there, or an unreadable entry
        return None
    return None


def push_scene(repo: Repo, stage: PipelineStage) -> bool:
    """`dvc push --run-cache` for one recorded stage, outputs included (DVC 3.67's `push --run-cache` pushes run
    records but not the outputs they name): its outs' objects to the default remote, then its run-cache entry,
    so an entry on the remote always has its outputs there. False when something could not be pushed."""
    from dvc.stage.cache import _get_cache_hash, _get_stage_hash
    from dvc.stage.serialize import to_single_stage_lockfile

    try:
        for odb, objs in stage.get_used_objs().items():
            repo.cloud.push(objs, odb=odb)
        key = _get_stage_hash(stage)
        value = _get_cache_hash(to_single_stage_lockfile(stage))
        src = repo.stage_cache._get_cache_path(key, value)
        if not os.path.isfile(src):
            return False  # DVC could not run-cache the stage: nothing another machine could restore
        remote = repo.cloud.get_remote_odb(None, "push --run-cache", hash_name="md5-dos2unix")
        fs = remote.fs
        dst = fs.join(remote.path, "runs", key[:2], key, value)
        fs.makedirs(fs.parent(dst), exist_ok=True)
        fs.put_file(src, dst)
    except Exception:  # noqa: BLE001 - an unreachable remote: the caller reports the scene as not pushed
        return False
    return True


class RemoteFolder:
    """A folder of s9's own small files on the default remote, beside DVC's `files/` and `runs/` (which DVC's
    commands never list outside of): how shards share what is not a DVC object, e.g. their journals."""

    def __init__(self, repo: Repo, *parts: str) -> None:
        remote = repo.cloud.get_remote_odb(None, "push", hash_name="md5-dos2unix")
        self.fs = remote.fs
        self.path = self.fs.join(remote.path, *parts)

    def names(self) -> set[str]:
        """The files in the folder (none when it does not exist yet)."""
        try:
            return {self.fs.name(path) for path in self.fs.find(self.path)}
        except FileNotFoundError:
            return set()

    def read(self, name: str) -> bytes:
        with self.fs.open(self.fs.join(self.path, name), "rb") as handle:
            return handle.read()

    def write(self, name: str, data: bytes) -> None:
        self.fs.makedirs(self.path, exist_ok=True)
        with self.fs.open(self.fs.join(self.path, name), "wb") as handle:
            handle.write(data)
