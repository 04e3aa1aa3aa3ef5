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
