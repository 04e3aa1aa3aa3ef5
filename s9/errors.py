"""The one error family the library raises; only the CLI turns these into exit codes."""

from __future__ import annotations


class S9Error(Exception):
    """Base class: the message is meant for a person and fits on one line."""

    exit_code = 1


class InputError(S9Error):
    """Bad input or configuration: nothing was generated. The CLI exits 2."""

    exit_code = 2


class GenerationError(S9Error):
    """A scene could not be generated (API failure, bad download, timeout). The CLI exits 1."""

    exit_code = 1


#: How much of a value an error message echoes.
SHOWN_CHARS = 60


def describe(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value as an error message may echo it: short, on one line, and found without walking it.

    Every message that repeats a user's value goes through here. A container is named by its kind, never
    repr()'d: a YAML alias bomb is a few lines of text that expand to billions of items when printed.
    """
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        # str() of an int over 4,300 digits raises ValueError.
        return repr(value) if value.bit_length() <= 64 else f"a {value.bit_length() * 3 // 10}-digit number"
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value)} characters)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"
