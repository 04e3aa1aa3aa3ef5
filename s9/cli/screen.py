"""Where a command's lines go, and the live progress display on a terminal.

One rich console draws the live display (on stderr) and prints every line that appears while it is up, so a
finished scene's line lands above the display instead of gluing onto a frozen copy of it. One writer at a time
(`Screen.lock`): a line, a redraw, the display's removal. Without a terminal nothing live is drawn: plain
lines only, the same words.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from ..runner import DONE, FAILED, QUEUED, SceneResult

# Rows of active scenes shown under the bar at most (the rest are counted), so 500 scenes fit a screen.
MAX_ROWS = 12


class Screen:
    """Prints lines: through the live display's console while one is up; through a rich console of its own on a
    terminal (it wraps at spaces, and breaks an over-long path after a '/', never mid-name); plain otherwise.
    Draws the live display (`show`, `hide`)."""

    def __init__(self) -> None:
        self.console: Any = None  # rich.console.Console of the live display, while it is up
        self._own: dict[bool, Any] = {}
        # rich's Live erases its last drawing before each line printed above it, but renders the display anew
        # for that line outside its own lock: a redraw from its refresh thread in between (with another number
        # of rows) made the erase take a scene line above with it, or leave a row of the display behind. So
        # every write to the screen (a line, a redraw, the removal) holds this lock from start to end.
        self.lock = threading.RLock()
        self._live: Any = None
        self._stop: threading.Event | None = None
        self._streams: tuple[Any, Any] | None = None

    def show(self, renderable: Any) -> None:
        """`renderable` drawn live on stderr, redrawn four times a second, until `hide`. Lines printed meanwhile,
        and whatever is written to `sys.stdout` (when it is the terminal too) and `sys.stderr`, go above it."""
        with self.lock:
            if self._live is not None:
                return
            from rich.console import Console
            from rich.live import Live

            console = Console(stderr=True)
            # transient: the display leaves no trace; what stays on the screen is the lines printed above it.
            live = Live(renderable, console=console, auto_refresh=False, transient=True, redirect_stdout=False,
                        redirect_stderr=False)  # s9 stands in for the streams itself (`_Above`)
            live.start()
            self._live, self.console, self._stop = live, console, threading.Event()
            self._streams = sys.stdout, sys.stderr
            sys.stderr = _Above(self, sys.stderr)
            if sys.stdout.isatty():
                sys.stdout = _Above(self, sys.stdout)
            threading.Thread(target=self._redraw, args=(live, self._stop), name="s9-screen", daemon=True).start()

    def _redraw(self, live: Any, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            with self.lock:
                if stop.is_set():  # hidden while this thread waited for the lock
                    return
                live.refresh()

    def hide(self) -> None:
        """The live display gone from the screen, and `sys.stdout` / `sys.stderr` what they were."""
        with self.lock:
            if self._live is None:
                return
            assert self._stop is not None and self._streams is not None
            self._stop.set()
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, _Above):
                    stream.flush()
            sys.stdout, sys.stderr = self._streams
            live, self._live, self.console = self._live, None, None
            live.stop()

    def _console(self, err: bool) -> Any:
        # A line meant for stdout goes through the display only when stdout is that same screen; redirected
        # to a file it stays plain and in the file.
        if self.console is not None and (err or sys.stdout.isatty()):
            return self.console
        if not (sys.stderr if err else sys.stdout).isatty() or os.environ.get("TERM") == "dumb":
            return None
        if err not in self._own:
            from rich.console import Console

            self._own[err] = Console(stderr=err)
        return self._own[err]

    def line(self, text: str, color: str | None = None, err: bool = False) -> None:
        with self.lock:
            console = self._console(err)
            if console is None:
                click.secho(text, fg=color, err=err)
                return
            from rich.text import Text

            text = " ".join(fold_path(word, console.width) for word in text.split(" "))
            console.print(Text(text, style=color or ""), highlight=False)


class _Above:
    """Stands in for `sys.stdout` / `sys.stderr` while the live display is up: each whole line written to it is
    printed above the display, under the screen's lock (DVC's log lines come this way)."""

    def __init__(self, screen: Screen, original: Any) -> None:
        self._screen = screen
        self._original = original
        self._pending = ""

    def write(self, text: str) -> int:
        with self._screen.lock:
            self._pending += text
            if "\n" in self._pending:
                lines, _, self._pending = self._pending.rpartition("\n")
                self._print(lines)
        return len(text)

    def flush(self) -> None:
        with self._screen.lock:
            if self._pending:
                lines, self._pending = self._pending, ""
                self._print(lines)

    def _print(self, lines: str) -> None:
        console = self._screen.console
        if console is None:  # the display went while a thread held on to this stream
            self._original.write(lines + "\n")
            return
        from rich.ansi import AnsiDecoder
        from rich.text import Text

        console.print(Text("\n").join(AnsiDecoder().decode(lines)), highlight=False)

    @property
    def rich_proxied_file(self) -> Any:
        """The real stream: where a rich console that finds this one in `sys.stderr` writes (rich's own convention
        for its stand-ins), not back into it."""
        return self._original

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    def __getattr__(self, name: str) -> Any:  # encoding, errors, buffer...: the real stream's
        return getattr(self._original, name)


SCREEN = Screen()


def fold_path(word: str, width: int) -> str:
    """`word` (a path, say) broken into lines of at most `width` after its '/'s; as it is when it fits."""
    if len(word) <= width or "/" not in word:
        return word
    lines, current = [], ""
    for part in word.split("/"):
        piece = part if not current else "/" + part
        if current and len(current) + len(piece) + 1 > width:  # +1: the line ends with the '/'
            lines.append(current + "/")
            current = part
        else:
            current += piece
    lines.append(current)
    return "\n".join(lines)


def shown_path(path: Path | str) -> str:
    """A path as a scene line shows it: relative to the working directory when inside it (short lines wrap
    less), else as given."""
    path = Path(path)
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return str(path)
    return path.as_posix()


class Display:
    """The live area: one bar line with counts per phase, then a row per scene in flight."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.lock = threading.Lock()
        self.scenes: dict[str, SceneResult] = {}  # the ones not finished: queued or in flight
        self.done: set[str] = set()  # labels only: a run of 10,000 scenes keeps no finished results here
        self.started = time.monotonic()

    def update(self, result: SceneResult) -> None:
        with self.lock:
            if result.phase in (DONE, FAILED):
                self.scenes.pop(result.label, None)
                self.done.add(result.label)
            elif result.label not in self.done:
                self.scenes[result.label] = result

    @property
    def finished(self) -> bool:
        with self.lock:
            return not self.scenes

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        with self.lock:
            scenes = list(self.scenes.values())
            finished = len(self.done)
        # Every row stays a column short of the screen: a row of exactly the width, or a wrapped one, throws
        # off the cursor arithmetic that erases the display, and a copy of it would stay behind.
        width = max(20, options.max_width - 1)
        total = len(scenes) + finished
        active = sorted((s for s in scenes if s.phase not in (DONE, FAILED, QUEUED)), key=lambda s: s.started or 0.0)
        counts: dict[str, int] = {}
        for s in scenes:
            if s.phase != DONE:
                counts[s.phase] = counts.get(s.phase, 0) + 1
        bar_width = max(10, min(30, width - 50))
        filled = round(bar_width * finished / max(total, 1))
        head = Text(f"{self.title} ")
        head.append("━" * filled, style="magenta")
        head.append("━" * (bar_width - filled), style="grey23")
        head.append(f" {finished}/{total} ")
        head.append(_clock(time.monotonic() - self.started), style="dim")
        if counts:
            head.append("  " + " · ".join(f"{n} {phase}" for phase, n in counts.items()), style="dim")
        head.truncate(width, overflow="ellipsis")
        yield head
        now = time.monotonic()
        for s in active[:MAX_ROWS]:
            row = Text(f"  [{s.concept}] scene {s.scene_number:<4}")
            row.append(f"{s.phase:<12}", style="cyan")
            row.append(_clock(now - (s.started or now)), style="dim")
            if s.prediction_id:
                row.append(f"  {s.prediction_id}", style="dim")
            row.truncate(width, overflow="ellipsis")
            yield row
        if len(active) > MAX_ROWS:
            yield Text(f"  … and {len(active) - MAX_ROWS} more in flight", style="dim")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
