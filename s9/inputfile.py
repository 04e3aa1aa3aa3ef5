"""Reading a file the user points s9 at: a regular file of bounded size, never a device, FIFO or socket.

`/dev/zero` would be read until memory runs out and a FIFO would block forever in open(), so the file is
opened non-blocking and checked with fstat() (the file checked is the file read) before a byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InputError

#: Scene prompts and settings files are kilobytes; anything near this is not one.
MAX_INPUT_BYTES = 64 << 20


def read_input_text(path: Path, what: str, label: str | None = None, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of `path`; every problem is an `InputError` `<label>: …` naming the `what` expected."""
    label = str(path) if label is None else label
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{label}: {what} not found") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd)
        if stat.S_ISDIR(mode.st_mode):
            raise InputError(f"{label}: is a directory, expected a {what}")
        if not stat.S_ISREG(mode.st_mode):
            raise InputError(f"{label}: not a regular file (expected a {what})")
        too_big = InputError(f"{label}: larger than {limit >> 20} MB, too large for a {what}")
        if mode.st_size > limit:
            raise too_big
        try:
            # Its size and one byte more, not `limit`: read(n) allocates n bytes up front, every call.
            data = handle.read(mode.st_size + 1)
            if len(data) > mode.st_size:  # it grew after fstat(): read on, still bounded
                data += handle.read(limit + 1 - len(data))
        except OSError as exc:
            raise InputError(f"{label}: cannot read ({exc.strerror or exc})") from None
        if len(data) > limit:  # it grew after fstat()
            raise too_big
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not UTF-8 text ({exc.reason})") from None
