"""Every use of DVC's Python internals, in one place, each covered by a test (tests/test_dvcside.py), so a DVC
upgrade that changes one fails loudly here rather than somewhere in the middle of a repro.

`dvc repro` re-collects its graph around every stage (quadratic in stage count); s9 opens one `Repo`, loads
only the stages it needs (lazily, per concept pipeline file), and records them with the calls `dvc repro`
makes per stage (save deps, save outs, run cache, commit) plus one lock write per concept file.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, InputError
from ..yamlio import shown, yaml_error
from .layout import LOCK_FILE

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


# -- DVC's own progress bars ------------------------------------------------------------------------------
# `dvc.progress.Tqdm` and `dvc_data.callbacks.Tqdm` turn themselves off when their module's logger is above
# ERROR: the only switch for the bars DVC draws on a terminal while s9 records, restores or pushes scenes
# during a live display of its own.
_PROGRESS_LOGGERS = ("dvc.progress", "dvc_data.callbacks")


def mute_progress_bars() -> Callable[[], None]:
    """Turn DVC's progress bars off; returns what turns them back on."""
    import logging

    loggers = [logging.getLogger(name) for name in _PROGRESS_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)

    def unmute() -> None:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

    return unmute


# -- opening the repository, locking, errors ---------------------------------------------------------------
@contextlib.contextmanager
def open_repo(root: Path, *, lock: bool) -> Iterator[Repo]:
    """A `Repo` at root; with `lock`, holding DVC's repo lock (as `dvc repro` does) and its scm context, so
    `.gitignore` entries for new outs are written and `core.autostage` is honoured. A busy repo is an
    `InputError` raised before anything is touched. The working directory is the root meanwhile: DVC resolves
    a stage's `wdir` against it."""
    from dvc.repo import Repo, lock_repo

    with contextlib.chdir(root), dvc_errors(root), Repo(str(root)) as repo, _param_files_read_once(), \
            _git_index_read_once(repo):
        if not lock:
            yield repo
            return
        with lock_repo(repo), repo.scm_context(quiet=True):
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
        raise InputError(f"{root}: DVC repository is busy ({_first_line(exc)}); is another dvc or s9 command "
                         "running? Nothing was changed") from None
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
        path = shown(str(exc.path).removeprefix("./"))
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
            return InputError(f"{shown(path)}: {keys} {verb} missing (a stage declares it as a params dependency: "
                              "add it to the file, or remove it from the stage)")
    if isinstance(exc, MissingParamsError | MissingParamsFile | BadParamFileError):
        return InputError(f"{_first_line(exc).rstrip('.')} (a pipeline stage depends on it)")
    if isinstance(exc, ResolveError):
        return InputError(_first_line(exc))
    return None


_PARAM_FILES_KEPT = 64


@contextlib.contextmanager
def _param_files_read_once() -> Iterator[None]:
    """DVC re-parses a params file for every params dep of every stage, several times per stage while saving.
    Within one s9 command the parse is memoized per file *and* its stat, so a file that changes is read again;
    callers get a deep copy, so nothing DVC does to a result can leak. The most recently used files are kept
    (params.yaml and the inputs.json of the concepts in flight), so a long run does not keep every one."""
    import copy

    from dvc.dependency import param

    original = param.load_path
    memo: OrderedDict[tuple, Any] = OrderedDict()

    def load_path(path: str, fs: Any, **kwargs: Any) -> Any:
        if getattr(fs, "protocol", None) != "local":  # e.g. a git revision's fs: not this working tree
            return original(path, fs, **kwargs)
        try:
            st = os.stat(path)
        except OSError:
            return original(path, fs, **kwargs)
        key = (path, st.st_ino, st.st_mtime_ns, st.st_size, tuple(sorted(kwargs.items())))
        if key in memo:
            memo.move_to_end(key)
        else:
            memo[key] = original(path, fs, **kwargs)
            if len(memo) > _PARAM_FILES_KEPT:  # the concepts in flight use a few each; the rest can go
                memo.popitem(last=False)
        return copy.deepcopy(memo[key])

    param.load_path = load_path
    try:
        yield
    finally:
        param.load_path = original


@contextlib.contextmanager
def _git_index_read_once(repo: Repo) -> Iterator[None]:
    """Before saving an out DVC asks git whether it is tracked (`Output.ignore`), and scmrepo's dulwich backend
    answers by reading the whole git index every time: quadratic in a repo of thousands of scenes (the index
    grows with every registered frame). Within one s9 command the index is read once per change of the index
    file (by its stat) into the set of tracked paths and their folders, which answers the same question."""
    from scmrepo.git import Git

    scm = repo.scm
    if not isinstance(scm, Git):  # no git: DVC asks nothing
        yield
        return
    index = scm.dulwich.repo.index_path()
    memo: dict[str, Any] = {"stamp": None, "tracked": frozenset()}

    def is_tracked(path: str) -> bool:
        try:
            st = os.stat(index)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != memo["stamp"] or stamp is None:
            tracked: set[str] = set()
            for key in scm.dulwich.repo.open_index() if stamp is not None else ():
                parts = key.decode("utf-8", "surrogateescape").split("/")
                tracked.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
            memo["stamp"], memo["tracked"] = stamp, frozenset(tracked)
        rel = os.path.relpath(path, scm.root_dir).replace(os.sep, "/")
        return rel in memo["tracked"]

    scm.is_tracked = is_tracked  # type: ignore[method-assign]
    try:
        yield
    finally:
        del scm.is_tracked


@contextlib.contextmanager
def edit_yaml(root: Path, path: Path) -> Iterator[Any]:
    """Edit a YAML file with DVC's own round-trip (comments kept, written as DVC writes params and locks)."""
    from dvc.utils.serialize import modify_yaml

    with dvc_errors(root), modify_yaml(str(path)) as data:
        yield data


# -- stages ------------------------------------------------------------------------------------------------
def load_stages(repo: Repo, dvc_file: Path, names: list[str]) -> dict[str, PipelineStage]:
    """Only the named stages of one pipeline file, each filled from its dvc.lock."""
    from dvc.dvcfile import ProjectFile

    loader = ProjectFile(repo, os.path.join(repo.root_dir, dvc_file)).stages
    return {name: loader[name] for name in names}


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


# -- run cache and remote ----------------------------------------------------------------------------------
def default_remote(repo: Repo) -> str | None:
    return repo.config["core"].get("remote") or None


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


def ignore_remove(repo: Repo, path: Path) -> None:
    """Drop the `.gitignore` entry DVC wrote for an out that no stage declares any more."""
    with contextlib.suppress(Exception):
        repo.scm_context.ignore_remove(str(path))


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


# -- experiments -------------------------------------------------------------------------------------------
def exp_save(root: Path, name: str | None) -> str | None:
    """`dvc exp save`: the workspace as it is now becomes an experiment of HEAD; its commit, or None."""
    from dvc.repo import Repo

    with contextlib.chdir(root), dvc_errors(root), Repo(str(root)) as repo:
        return repo.experiments.save(name=name, force=True)


def exp_run(root: Path, *, queue: bool, tmp_dir: bool, name: str | None) -> Any:
    """`dvc exp run --queue` / `--temp` of the workspace as it is now (its params already applied)."""
    from dvc.repo import Repo

    with contextlib.chdir(root), dvc_errors(root), Repo(str(root)) as repo:
        return repo.experiments.run(queue=queue, tmp_dir=tmp_dir, name=name)
