"""The few DVC API calls s9 needs, in one place: open the repo, load single stages, the run cache, commit.

`dvc repro` re-collects its graph around every stage (quadratic in stage count); here one `Repo` instance
loads only the stages that are stale (lazily, through the project file's stage loader), and records them
with the same calls `dvc repro` / `dvc commit -f` make per stage (`save` then `commit`) plus a single
dvc.lock write, so bookkeeping is linear.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, InputError
from ..yamlio import shown, yaml_error
from .registry import DVC_FILE, LOCK_FILE

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


@contextlib.contextmanager
def open_repo(root: Path, *, lock: bool) -> Iterator[Repo]:
    """A `Repo` at root; with `lock`, holding DVC's repo lock (as `dvc repro` does) and its scm context,
    so `.gitignore` entries for new outs are written and `core.autostage` is honoured."""
    from dvc.repo import Repo, lock_repo

    with dvc_errors(root), Repo(str(root)) as repo, _param_files_read_once():
        if not lock:
            yield repo
            return
        with repo.scm_context(quiet=True), lock_repo(repo):
            yield repo


@contextlib.contextmanager
def dvc_errors(root: Path) -> Iterator[None]:
    """DVC's exceptions as s9's: one line, not a DVC traceback. What DVC rejects in a file the user can fix
    (dvc.yaml, dvc.lock, a params file) is an `InputError` naming that file; anything else a `GenerationError`."""
    from dvc.exceptions import DvcException
    from dvc.lock import LockError

    try:
        yield
    except LockError as exc:
        raise InputError(f"{root}: DVC repository is busy ({exc}); is another dvc or s9 repro running?") from None
    except DvcException as exc:  # errors are values until the CLI
        bad_input = _input_error(exc)
        if bad_input is not None:
            raise bad_input from None
        raise GenerationError(f"dvc: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _input_error(exc: Exception) -> InputError | None:
    """The `InputError` for a DVC exception caused by a file's content, or None."""
    from dvc.dependency.param import BadParamFileError, MissingParamsError, MissingParamsFile
    from dvc.parsing import ResolveError
    from dvc.utils.serialize import ParseError
    from dvc.utils.strictyaml import YAMLValidationError

    if isinstance(exc, YAMLValidationError):
        path = shown(str(exc.path).removeprefix("./") or DVC_FILE)
        errors = getattr(exc.exc, "errors", None) or [exc.exc]
        first = errors[0]
        where = " -> ".join(str(p) for p in getattr(first, "path", []) or [])
        more = f"; {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
        what = "DVC lock file" if path.endswith(LOCK_FILE) else "DVC pipeline file"
        detail = getattr(first, "error_message", None) or str(first)
        return InputError(f"{path}: not a valid {what} ({detail}{f' at {where}' if where else ''}{more})")
    if isinstance(exc, ParseError):  # YAML syntax (YAMLSyntaxError), encoding, …: DVC names the file
        path = str(getattr(exc, "relpath", None) or exc.path).removeprefix("./")
        cause = getattr(exc, "exc", None)
        marked = getattr(cause, "__cause__", None) if cause is not None else None
        if marked is not None and getattr(marked, "problem_mark", None) is not None:
            return yaml_error(path, marked, getattr(exc, "yaml_text", None))
        return InputError(f"{shown(path)}: {_first_line(exc).replace(f'unable to read: {exc.path!r}, ', '')}")
    if isinstance(exc, MissingParamsError):  # "Parameters 'a, b' are missing from 'params.yaml'."
        found = re.match(r"Parameters '(.+)' are missing from '(.+)'", _first_line(exc))
        if found:
            keys, path = found.groups()
            verb = "are" if "," in keys else "is"
            return InputError(f"{shown(path)}: {keys} {verb} missing (a stage in {DVC_FILE} declares it as a params "
                              "dependency: add it to the file, or remove it from the stage)")
    if isinstance(exc, MissingParamsError | MissingParamsFile | BadParamFileError):
        return InputError(f"{_first_line(exc).rstrip('.')} (a stage in {DVC_FILE} depends on it)")
    if isinstance(exc, ResolveError):
        return InputError(f"{DVC_FILE}: {_first_line(exc)}")
    return None


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
