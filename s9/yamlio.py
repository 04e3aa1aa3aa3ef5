"""Reading the pipeline's YAML files (dvc.yaml, dvc.lock, s9_scenes.yaml, params files) so that a broken one is
one `InputError` line naming the file and the line, never a parser traceback.

One parser: DVC's (ruamel, YAML 1.2), because DVC reads and rewrites these files (`dvc exp run -S` rewrites
params.yaml) and the values s9 reads must be the values DVC compares. The files s9 owns (params.yaml,
s9_scenes.yaml) are read with `parse_owned_yaml`, which also refuses anchors and aliases: a few lines of
`&a [*a, *a, …]` expand to billions of items in whatever later walks or prints the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, describe
from .inputfile import read_input_text

_MERGE_MARKER = re.compile(r"^(<{7}|={7}|>{7})( .*)?$", re.MULTILINE)


def parse_yaml(text: str) -> Any:
    """YAML the way DVC reads it (params files and dvc.lock)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


class _Yaml12Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's C parser with YAML 1.2's resolution (ruamel's table, as DVC reads): ~20x faster than ruamel
    on the many small dvc.lock files a large repo has; a test holds the two to the same values."""

    yaml_implicit_resolvers: dict = {}

    def construct_yaml_int(self, node: yaml.Node) -> int:
        # YAML 1.2: a leading 0 is decimal (YAML 1.1 read it as octal); 0o, 0x, 0b prefixes; `_` separators.
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        for prefix, base in (("0b", 2), ("0o", 8), ("0x", 16)):
            if text.startswith(prefix):
                return sign * int(text[2:], base)
        return sign * int(text, 10)


def _yaml12_resolvers() -> None:
    from ruamel.yaml.resolver import implicit_resolvers

    for versions, tag, regexp, first in implicit_resolvers:
        if (1, 2) in versions:
            _Yaml12Loader.add_implicit_resolver(tag, regexp, first)
    _Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _Yaml12Loader.construct_yaml_int)


_yaml12_resolvers()


def parse_yaml_fast(text: str) -> Any:
    """`parse_yaml`'s values, parsed by libyaml: for files DVC writes and s9 only reads (dvc.lock). A file it
    cannot parse is parsed again by DVC's parser, so the error reported is the one DVC would give."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return parse_yaml(text)


def parse_owned_yaml(text: str) -> Any:
    """`parse_yaml`, refusing anchors (`&name`) and aliases (`*name`): s9's own files never need them."""
    if "&" in text or "*" in text:  # neither can appear without one of these characters
        from ruamel.yaml import YAML
        from ruamel.yaml.error import MarkedYAMLError

        # Events are read one at a time and never expanded, so this costs the size of the text.
        for event in YAML(typ="safe").parse(text):
            if getattr(event, "anchor", None) is not None:
                raise MarkedYAMLError(
                    problem="YAML anchors and aliases are not allowed in this file; write the value out",
                    problem_mark=event.start_mark,
                )
    return parse_yaml(text)


def shown(path: Path | str) -> str:
    """A path for a message: relative to the working directory when under it (`dvc.lock`), else absolute."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full)
    return full if rel == ".." or rel.startswith(f"..{os.sep}") else rel


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# Parser wording -> what to do about it, for the mistakes people make by hand (first match wins).
_PLAIN = (
    ("cannot start any token", "'\\t'", "tabs cannot indent YAML: use spaces"),
    ("mapping values are not allowed", "", "a 'key: value' where none can start: check this line's indentation "
     "against the line above, or quote a value that contains ': '"),
    ("expected <block end>", "", "this line's indentation does not line up with the lines above it"),
    ("could not find expected ':'", "", "a key without ':' after it (or a quote left open above)"),
    ("found unexpected end of stream", "", "a quote or bracket opened above is never closed"),
    ("expected ',' or ']'", "", "a '[' list opened above is never closed with ']'"),
    ("expected ',' or '}'", "", "a '{' mapping opened above is never closed with '}'"),
    ("found duplicate key", "", "a key appears twice in the same mapping: keep one"),
    ("cannot start any token", "", "a value cannot start with this character: quote it"),
)
_SHOWN_LINE = 80  # characters of the offending line quoted in the message


def _plain(problem: str) -> str:
    for needle, also, advice in _PLAIN:
        if needle in problem and also in problem:
            return advice
    return ""


def _quoted_line(text: str | None, line: int) -> str:
    """The offending line as the message quotes it, or "" when it is unknown or blank."""
    lines = (text or "").splitlines()
    if not 0 <= line < len(lines) or not lines[line].strip():
        return ""
    shown_line = lines[line].rstrip()
    if len(shown_line) > _SHOWN_LINE:
        shown_line = shown_line[:_SHOWN_LINE - 1] + "…"
    return repr(shown_line)


def yaml_error(path: Path | str, exc: Exception, text: str | None = None) -> InputError:
    """`<file>: invalid YAML at line N (problem; context): what to do; line N reads '…'`, from a PyYAML or ruamel
    error.

    The parser's own problem text is always there (people search for it), followed by plain advice for the
    usual hand-editing mistakes and the line itself, so the message says what is wrong without opening the file.
    """
    if text is None:  # a caller (DVC's parse error) without the text: read it, for quoting the line
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = None
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    line = mark.line if mark is not None else None
    if line is None and isinstance(getattr(exc, "position", None), int) and text is not None:
        line = text.count("\n", 0, exc.position)  # a reader error (a control character) has only an offset
    if problem:
        detail = _one_line(problem)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark.line != line:
            detail += f"; {_one_line(context)} at line {context_mark.line + 1}"
    else:
        detail = _one_line(str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__)
    advice = _plain(detail)
    where = f" at line {line + 1}" if line is not None else ""
    quoted = f"; line {line + 1} reads {_quoted_line(text, line)}" if line is not None and _quoted_line(
        text, line) else ""
    hint = ""
    if text is not None and _MERGE_MARKER.search(text):
        hint = "; it has merge conflict markers (<<<<<<< / ======= / >>>>>>>): resolve them first"
    return InputError(f"{shown(path)}: invalid YAML{where} ({detail}){f': {advice}' if advice else ''}{quoted}"
                      f"{hint}")


def read_yaml(path: Path, parse: Callable[[str], Any] | None = None) -> Any:
    """Parse a YAML file as DVC does (YAML 1.2); problems are `InputError`s naming the file and line.

    `parse` defaults to `parse_owned_yaml` (s9's own files); pass `parse_yaml` for files DVC writes.
    """
    text = read_input_text(path, "YAML file", shown(path))
    try:
        return (parse or parse_owned_yaml)(text)
    except RecursionError:
        raise InputError(f"{shown(path)}: invalid YAML: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError / ruamel's YAMLError (and its readers' errors)
        if _is_yaml_error(exc):
            raise yaml_error(path, exc, text) from None
        if isinstance(exc, ValueError):  # a constructor's: an int over 4,300 digits, a date like 2024-13-45
            detail = _one_line(str(exc).split(";")[0])[:200]
            raise InputError(f"{shown(path)}: invalid YAML: a value cannot be read ({detail})") from None
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
    if isinstance(value, str):
        return f"the text {describe(value)}"
    return f"{type(value).__name__} {describe(value)}" if isinstance(value, int | float | bool) else describe(value)
