"""A real terminal for the tests: a command in a tmux session of its own, and the screen read back as a person
would see it (`capture-pane`, scrollback included), not the bytes the program wrote."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (scripts/system-deps.sh installs it)")
EXIT = "S9-EXIT:"


class Terminal:
    """`cmd` running in a detached tmux session `width` x `height`, with exactly `env` as its environment."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], width: int = 80, height: int = 40) -> None:
        assert TMUX is not None
        self.socket = f"s9test-{uuid.uuid4().hex[:12]}"
        fd, name = tempfile.mkstemp(prefix=f"{self.socket}-", suffix=".sh")  # outside the project under test
        os.close(fd)
        script = Path(name)
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())
        # The exit status is printed on the screen, then the pane stays open so it can still be read.
        script.write_text(f"{exports}cd {shlex.quote(str(cwd))}\n{shlex.join(cmd)}\n"
                          f"echo {EXIT}$?\nexec sleep 600\n")
        self.script = script
        # `env -i`: the pane gets exactly `env`, not the tmux server's (pytest's COLUMNS=80 would make every
        # program draw for 80 columns on a narrower screen).
        self._tmux("new-session", "-d", "-x", str(width), "-y", str(height),
                   f"env -i bash --noprofile --norc {shlex.quote(str(script))}")
        self.pane_pid = int(self._tmux("display-message", "-p", "#{pane_pid}").strip())

    def _tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.socket, "-f", os.devnull, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def screen(self) -> str:
        """Everything on the screen and in its scrollback, one screen row per line, trailing blanks dropped."""
        rows = self._tmux("capture-pane", "-p", "-S", "-", "-E", "-").split("\n")
        return "\n".join(row.rstrip() for row in rows).strip("\n")

    def wait_for(self, condition: Callable[[str], bool], timeout: float = 60.0, what: str = "the screen") -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if condition(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 120.0) -> tuple[int, str]:
        """(exit status, final screen) once the command has ended."""
        text = self.wait_for(lambda s: EXIT in s, timeout, "the command to end")
        code = int(text.rsplit(EXIT, 1)[1].split()[0])
        return code, text[: text.rindex(EXIT)].rstrip("\n")

    def command_pid(self) -> int:
        """The pid of the command itself (the pane's shell runs it as its child)."""
        children = Path(f"/proc/{self.pane_pid}/task/{self.pane_pid}/children").read_text().split()
        return int(children[0])

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "-f", os.devnull, "kill-server"], capture_output=True, timeout=30)
        self.script.unlink(missing_ok=True)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
