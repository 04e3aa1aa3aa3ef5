"""Opening DVC's `Repo` under its repo lock, DVC's errors as s9's one-line ones, reading each params file and
the git index once per command, DVC's YAML round trip, its progress bars, and `dvc exp save` / `exp run`."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import GenerationError, InputError
from ...yamlio import shown, yaml_error
from ..layout import LOCK_FILE

if TYPE_CHECKING:
    from dvc.repo import Repo


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


class _CurrentStream:
    """Writes to whatever `sys.stdout` / `sys.stderr` is at the moment: rich's live display swaps in its own
    while it draws, so what is written through it lands above the display instead of through it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()

    def isatty(self) -> bool:
        return getattr(sys, self.name).isatty()


def route_dvc_logs() -> Callable[[], None]:
    """DVC's log lines ("Updating lock file ...") through the current `sys.stdout` / `sys.stderr` rather than
    the streams DVC's handlers took when `dvc` was imported, which bypass a live display and tear it; returns
    what puts the handlers back."""
    import logging

    import dvc  # noqa: F401 - importing it installs the handlers (`dvc.logger.setup()`), if not done yet

    moved = []
    for handler in logging.getLogger("dvc").handlers:
        if not isinstance(handler, logging.StreamHandler):
            continue
        try:
            name = {1: "stdout", 2: "stderr"}.get(handler.stream.fileno())
        except (AttributeError, OSError, ValueError):  # not a stream on a file descriptor
            continue
        if name is not None:
            moved.append((handler, handler.setStream(_CurrentStream(name))))

    def restore() -> None:
        for handler, stream in moved:
            handler.setStream(stream)

    return restore


@contextlib.contextmanager
def open_repo(root: Path, *, lock: bool) -> Iterator[Repo]:
    """A `Repo` at root; with `lock`, holding DVC's repo lock (as `dvc repro` does) and its scm context, so
    `.gitignore` entries for new outs are written and `core.autostage` is honoured. A busy repo is an
    `InputError` raised before anything is touched. The working directory is the root meanwhile: DVC resolves
    a stage's `wdir` against it."""
    from dvc.repo import Repo, lock_repo

    with contextlib.chdir(root), dvc_errors(root), Repo(str(root)) as repo, _param_files_read_once(), \
            _git_index_read_once(repo):
        lean_state(repo)
        if not lock:
            yield repo
            return
        with lock_repo(repo), repo.scm_context(quiet=True):
            yield repo


# DVC's state databases (file hashes, checked-out links: diskcache on SQLite) open with a 32 MiB page cache
# and a 64 MiB memory map each, and both fill as the database grows: over a run of thousands of scenes that
# alone grew s9's resident memory by about 4 KiB a scene. s9 reads and writes a few rows a scene.
STATE_PRAGMAS = {"mmap_size": 0, "cache_size": 512}  # pages of 4 KiB: 2 MiB


def lean_state(repo: Repo) -> None:
    """Small SQLite caches for DVC's state databases, on every connection this process opens to them.

    diskcache opens one connection per thread (DVC hashes a directory out on a thread pool) and applies the
    settings stored in the database to each; DVC's repo lock closes them. So the pragmas go with the
    connection, not into the database, where `dvc` itself would inherit them."""
    for db in (getattr(repo.state, "hashes", None), getattr(repo.state, "links", None)):  # StateNoop has none
        if db is not None and not getattr(db, "lean", False):
            db.__class__ = _lean(type(db))


@functools.cache
def _lean(cls: type) -> type:
    class Lean(cls):  # type: ignore[valid-type, misc]
        lean = True

        @property
        def _con(self) -> Any:
            local = self._local
            if getattr(local, "opening", False):  # diskcache applies its stored settings through `_con`
                return super()._con
            local.opening = True
            try:
                con = super()._con
            finally:
                local.opening = False
            if getattr(local, "lean_con", None) is not con:  # a connection new to this thread: after those
                for pragma, value in STATE_PRAGMAS.items():
                    con.execute(f"PRAGMA {pragma} = {value}")
                local.lean_con = con
            return con

    Lean.__name__ = Lean.__qualname__ = f"Lean{cls.__name__}"
    return Lean


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
