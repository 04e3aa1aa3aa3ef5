"""Reading the pipeline's YAML files (dvc.yaml, dvc.lock, s9_scenes.yaml, params files) so that a broken one is
one `InputError` line naming the file and the line, never a parser traceback.

One parser: DVC's (ruamel, YAML 1.2), because DVC reads and rewrites these files (`dvc exp run -S` rewrites
params.yaml) and the values s9 reads must be the values DVC compares.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

_MERGE_MARKER = re.compile(r"^(<{7}|={7}|>{7})( .*)?$", re.MULTILINE)


def parse_yaml(text: str) -> Any:
    """YAML the way DVC reads it (params files and dvc.lock)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def shown(path: Path | str) -> str:
    """A path for a message: relative to the working directory when under it (`dvc.lock`), else absolute."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full)
    return full if rel == ".." or rel.startswith(f"..{os.sep}") else rel


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def yaml_error(path: Path | str, exc: Exception, text: str | None = None) -> InputError:
    """`<file>: invalid YAML at line N (problem; context)`, from a PyYAML or ruamel error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        detail = _one_line(problem)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark.line != mark.line:
            detail += f"; {_one_line(context)} at line {context_mark.line + 1}"
        where = f" at line {mark.line + 1}"
    else:
        detail, where = _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__), ""
    hint = ""
    if text is not None and _MERGE_MARKER.search(text):
        hint = "; it has merge conflict markers (<<<<<<< / ======= / >>>>>>>): resolve them first"
    return InputError(f"{shown(path)}: invalid YAML{where} ({detail}){hint}")


def read_yaml(path: Path, parse: Callable[[str], Any] | None = None) -> Any:
    """Parse a YAML file as DVC does (YAML 1.2); problems are `InputError`s naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{shown(path)}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InputError(f"{shown(path)}: cannot read ({exc.strerror or exc})") from None
    try:
        return (parse or parse_yaml)(text)
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError / ruamel's YAMLError (and its readers' errors)
        if _is_yaml_error(exc):
            raise yaml_error(path, exc, text) from None
        raise


def _is_yaml_error(exc: Exception) -> bool:
    if isinstance(exc, yaml.YAMLError):
        return True
    try:
        from ruamel.yaml.error import YAMLError
    except ImportError:  # pragma: no cover - ruamel comes with DVC
        return False
    return isinstance(exc, YAMLError)


def expect_mapping(value: Any, path: Path | str, what: str) -> dict:
    """`value` (None counts as empty) as a dict, or `<file>: expected <what> to be a mapping, got <type>`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{shown(path)}: expected {what} to be a mapping, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}" if len(value) < 40 else "text"
    return f"{type(value).__name__} {value!r}" if isinstance(value, int | float | bool) else type(value).__name__
