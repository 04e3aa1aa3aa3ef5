"""What the commands print: per-scene lines, the progress bar, warnings and the run summary."""

from __future__ import annotations

import sys

import click

from ..job import Job
from ..models import MODELS
from ..params import Settings
from ..runner import SceneResult, Summary


def warning_line(concept: str, warning: str) -> str:
    """Every ⚠ and ✗ line starts with its concept: runs mix concepts, and scene numbers repeat across them."""
    return f"[{concept}] ⚠ {warning}"


def warn(jobs: list[Job]) -> None:
    shown: set[str] = set()
    for job in jobs:
        for warning in job.warnings:
            line = warning_line(job.concept, warning)
            if line not in shown:  # the same adjustment for every scene of a concept is said once
                shown.add(line)
                click.secho(line, fg="yellow", err=True)


class Progress:
    """Per-scene lines always; a live bar only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self.bar = None
        if sys.stderr.isatty() and total > 1:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("scenes", total=total)

    def __enter__(self) -> Progress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def __call__(self, kind: str, result: SceneResult) -> None:
        if kind != "done":
            return
        if self.bar:
            self.bar.advance(self.task)
        print_result(result)


def print_result(result: SceneResult) -> None:
    tag = f"[{result.concept}]"
    if result.ok:
        assert result.job is not None
        click.secho(f"{tag} ✓ Scene {result.scene_number}: {result.job.output} ({result.seconds:.1f}s)", fg="green")
    else:
        click.secho(f"{tag} ✗ Scene {result.scene_number} failed: {result.error}", fg="red", err=True)


def print_skipped(result: SceneResult) -> None:
    """A scene whose inputs failed the up-front check: said before anything is generated."""
    click.secho(f"[{result.concept}] ✗ Scene {result.scene_number}: {result.error}; skipping", fg="red", err=True)


def print_summary(summary: Summary, settings: Settings, backend: str) -> None:
    clips = summary.count_files(".mp4")
    debug = summary.count_files(".txt")
    minutes = summary.seconds / 60
    click.echo(f"Parallel workers: {summary.workers}")
    click.echo(f"Scenes: {len(summary.results)}")
    click.echo(f"Model: {MODELS[settings.video_model].label}")
    click.echo(f"Backend: {backend}")
    click.echo(f"Time: {summary.seconds:.1f} seconds ({minutes:.1f} minutes)")
    click.echo(f"Files generated: {clips + debug} total")
    click.echo(f"  - {clips} video clips")
    click.echo(f"  - {debug} debug prompt files")
    click.echo(summary.success_rate())
