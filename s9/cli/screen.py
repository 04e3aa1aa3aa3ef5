"""Where a command's lines go, and the live progress display on a terminal.

One rich console draws the live display (on stderr) and prints every line that appears while it is up, so a
finished scene's line lands above the display instead of gluing onto a frozen copy of it. Without a terminal
nothing live is drawn: plain lines only, the same words.
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
    terminal (it wraps at spaces, and breaks an over-long path after a '/', never mid-name); plain otherwise."""

    def __init__(self) -> None:
        self.console: Any = None  # rich.console.Console of the live display, while it is up
        self._own: dict[bool, Any] = {}

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
        console = self._console(err)
        if console is None:
            click.secho(text, fg=color, err=err)
            return
        from rich.text import Text

        text = " ".join(fold_path(word, console.width) for word in text.split(" "))
        console.print(Text(text, style=color or ""), highlight=False)


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
