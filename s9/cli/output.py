"""What the commands print: per-scene lines, warnings, the run summary, and `Progress`, the listener that keeps
the live display (`screen`) and those lines together."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from ..job import Job
from ..models import MODELS
from ..params import Settings
from ..runner import QUEUED, SceneResult, Summary
from .screen import SCREEN, Display, shown_path

__all__ = ["Progress", "print_result", "print_skipped", "print_summary", "scene_warnings", "warn", "warning_line"]


def warning_line(concept: str, warning: str) -> str:
    """Every ⚠ and ✗ line starts with its concept: runs mix concepts, and scene numbers repeat across them."""
    return f"[{concept}] ⚠ {warning}"


def scene_span(numbers: list[int]) -> str:
    """`scene 2`, `scenes 1-3, 5`: the scenes a line is about."""
    numbers = sorted(set(numbers))
    runs: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        runs.append(str(numbers[i]) if i == j else f"{numbers[i]}-{numbers[j]}")
        i = j + 1
    return ("scene " if len(numbers) == 1 else "scenes ") + ", ".join(runs)


def scene_warnings(jobs: list[Job]) -> list[str]:
    """Each job warning as one line naming its concept and scene(s): the same warning for several scenes of a
    concept (a duration snapped the same way) is one line listing them."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for job in jobs:
        for warning in job.warnings:
            text = warning.removeprefix(f"{job.label}: ")  # some warnings already start with their scene
            grouped.setdefault((job.concept, text), []).append(job.scene.number)
    return [warning_line(concept, f"{scene_span(numbers)}: {text}") for (concept, text), numbers in grouped.items()]


def warn(jobs: list[Job]) -> None:
    for line in scene_warnings(jobs):
        SCREEN.line(line, "yellow", err=True)


def print_result(result: SceneResult) -> None:
    tag = f"[{result.concept}]"
    if result.ok:
        assert result.job is not None
        SCREEN.line(f"{tag} ✓ Scene {result.scene_number}: {shown_path(result.job.output)} ({result.seconds:.1f}s)",
                    "green")
    else:
        SCREEN.line(f"{tag} ✗ Scene {result.scene_number} failed: {result.error}", "red", err=True)


def print_skipped(result: SceneResult) -> None:
    """A scene whose inputs failed the up-front check: said before anything is generated."""
    SCREEN.line(f"[{result.concept}] ✗ Scene {result.scene_number}: {result.error}; skipping", "red", err=True)


def print_summary(summary: Summary, settings: Settings, backend: str) -> None:
    clips = summary.count_files(".mp4")
    debug = summary.count_files(".txt")
    minutes = summary.seconds / 60
    failed = summary.failed
    SCREEN.line(f"Parallel workers: {summary.workers}")
    SCREEN.line(f"Scenes: {len(summary.results)}")
    SCREEN.line(f"Model: {MODELS[settings.video_model].label}")
    SCREEN.line(f"Backend: {backend}")
    SCREEN.line(f"Time: {summary.seconds:.1f} seconds ({minutes:.1f} minutes)")
    SCREEN.line(f"Files generated: {clips + debug} total")
    SCREEN.line(f"  - {clips} video clips" + (f" ({len(failed)} scene(s) failed, listed below)" if failed else ""))
    SCREEN.line(f"  - {debug} debug prompt files")
    SCREEN.line(summary.success_rate())
    if failed:
        # Every failure again, after the scrolling: the one place to read what went wrong and where.
        SCREEN.line(f"Failed ({len(failed)}):", "red")
        for result in failed:
            where = f" (see {shown_path(result.job.error_file)})" if result.job is not None else ""
            SCREEN.line(f"  [{result.concept}] ✗ Scene {result.scene_number}: {result.error}{where}", "red")


class Progress:
    """A run's listener (`s9.runner.Listener`): a live display of every scene's phase (queued, uploading,
    submitted, running, downloading; the prediction id once known) while stderr is a terminal; each finished
    scene's ✓/✗ line in every case. Starts with the first scene event, so a command that plans, restores
    or refuses first (`s9 repro`) draws nothing until something is generated."""

    def __init__(self, title: str = "generating", live: bool | None = None) -> None:
        self.title = title
        self.live_wanted = sys.stderr.isatty() and os.environ.get("TERM") != "dumb" if live is None else live
        self.display = Display(title)
        self.unmute: Any = None
        self.pending_warnings: list[Job] = []
        self.lock = threading.Lock()

    def __enter__(self) -> Progress:
        if self.live_wanted:
            # DVC's own bars (scenes recorded, restored or pushed while others run, or just after) would tear
            # through this display and leave debris on the screen: s9's display is the one progress shown. Its
            # log lines are printed above the display, as s9's own are.
            from ..pipeline.dvcside import mute_progress_bars, route_dvc_logs

            unmute, unroute = mute_progress_bars(), route_dvc_logs()
            self.unmute = lambda: (unroute(), unmute())
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.unmute is not None:
            self.unmute()
            self.unmute = None

    def _start(self) -> None:
        if self.live_wanted:
            SCREEN.show(self.display)  # once: the screen knows whether it is up

    def stop(self) -> None:
        if self.live_wanted:
            SCREEN.hide()

    def __call__(self, kind: str, result: SceneResult) -> None:
        if kind == "phase" and result.phase == QUEUED and result.job is not None:
            with self.lock:
                self.pending_warnings.append(result.job)
        else:
            self._flush_warnings()
        if kind in ("phase", "start", "done"):
            self._start()
            self.display.update(result)
        if kind == "done":
            print_result(result)
            if self.display.finished:
                # Gone before whatever the command does next (DVC recording the clips draws bars of its own).
                self.stop()

    def _flush_warnings(self) -> None:
        """The queued jobs' warnings, once, before the first scene starts: each names its concept and scenes."""
        with self.lock:
            jobs, self.pending_warnings = self.pending_warnings, []
        if jobs:
            for line in scene_warnings(jobs):
                SCREEN.line(line, "yellow", err=True)
