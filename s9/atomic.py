"""Outputs appear whole or not at all: write beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_stale(target: Path) -> list[Path]:
    """Delete temp files left beside `target` by processes that died (`kill -9` skips our cleanup)."""
    removed = []
    prefix = f".{target.name}."
    with contextlib.suppress(FileNotFoundError):
        for sibling in target.parent.iterdir():
            name = sibling.name
            if not name.startswith(prefix) or ".tmp" not in name:
                continue
            pid_text = name[len(prefix):].split(".", 1)[0]
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                with contextlib.suppress(FileNotFoundError):
                    sibling.unlink()
                    removed.append(sibling)
    return removed


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path in the target's folder; on success rename it onto `target`, else delete it.

    The temp name carries our pid so a later run can tell an orphan from a file still being written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; clips are shared through git/DVC
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
