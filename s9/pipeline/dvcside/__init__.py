"""Every use of DVC's Python internals, in one place, each covered by a test (tests/test_dvcside.py), so a DVC
upgrade that changes one fails loudly here rather than somewhere in the middle of a repro.

`dvc repro` re-collects its graph around every stage (quadratic in stage count); s9 opens one `Repo`, loads
only the stages it needs (lazily, per concept pipeline file), and records them with the calls `dvc repro`
makes per stage (save deps, save outs, run cache, commit) plus one lock write per concept file.

By concern: `repo` (opening it under its lock, errors, params and git index read once, YAML, progress bars,
experiments), `stages` (loading and recording), `runcache` (the local cache and run cache: restoring without
running), `remote` (the default remote: what it holds, pushing a scene, s9's own folder there). The rest of
s9 imports only this package's names below.
"""

from .remote import (
    RemoteFolder,
    default_remote,
    entry_on_remote,
    locked_outs_on_remote,
    push_scene,
    remote_run_cache_entry,
)
from .repo import dvc_errors, edit_yaml, exp_run, exp_save, mute_progress_bars, open_repo, route_dvc_logs
from .runcache import (
    cached,
    entry_cached,
    has_local_run_cache,
    local_run_cache_entry,
    pipeline_data,
    pull_run_cache,
    restore,
    virtual_stage,
)
from .stages import dep_values, dump, file_hashes, forget_walked, ignore_remove, load_stages, record, stage_loader

__all__ = [
    "RemoteFolder", "cached", "default_remote", "dep_values", "dump", "dvc_errors", "edit_yaml", "entry_cached",
    "entry_on_remote", "exp_run", "exp_save", "file_hashes", "forget_walked", "has_local_run_cache",
    "ignore_remove", "load_stages", "local_run_cache_entry", "locked_outs_on_remote", "mute_progress_bars",
    "open_repo", "pipeline_data", "pull_run_cache", "push_scene", "record", "remote_run_cache_entry", "restore",
    "route_dvc_logs", "stage_loader", "virtual_stage",
]
