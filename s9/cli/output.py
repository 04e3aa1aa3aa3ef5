"""What the commands print: per-scene lines, warnings and the run summary (the live display is `screen`)."""

from __future__ import annotations

from ..job import Job
from ..models import MODELS
from ..params import Settings
from ..runner import SceneResult, Summary
from .screen import SCREEN, Progress, shown_path

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
    clips = [f for f in summary.files_written if f.suffix == ".mp4"]
    debug = [f for f in summary.files_written if f.suffix == ".txt"]
    minutes = summary.seconds / 60
    failed = summary.failed
    SCREEN.line(f"Parallel workers: {summary.workers}")
    SCREEN.line(f"Scenes: {len(summary.results)}")
    SCREEN.line(f"Model: {MODELS[settings.video_model].label}")
    SCREEN.line(f"Backend: {backend}")
    SCREEN.line(f"Time: {summary.seconds:.1f} seconds ({minutes:.1f} minutes)")
    SCREEN.line(f"Files generated: {len(clips) + len(debug)} total")
    SCREEN.line(f"  - {len(clips)} video clips" + (f" ({len(failed)} scene(s) failed, listed below)" if failed else ""))
    SCREEN.line(f"  - {len(debug)} debug prompt files")
    SCREEN.line(summary.success_rate())
    if failed:
        # Every failure again, after the scrolling: the one place to read what went wrong and where.
        SCREEN.line(f"Failed ({len(failed)}):", "red")
        for result in failed:
            where = f" (see {shown_path(result.job.error_file)})" if result.job is not None else ""
            SCREEN.line(f"  [{result.concept}] ✗ Scene {result.scene_number}: {result.error}{where}", "red")
