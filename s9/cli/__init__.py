"""The `s9` command: parses options, calls the library, prints, and maps errors to exit codes.

One module per group of commands; importing them registers their commands on `cli`.
"""

from . import pipeline, replicate, review, single  # noqa: F401 - registers the commands
from .app import cli, main
from .fake import fake_replicate_command

cli.add_command(fake_replicate_command)

__all__ = ["cli", "main"]
