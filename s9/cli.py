"""The `s9` command: parses options, calls the library, prints, and maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from .backends import get_backend
from .errors import InputError, S9Error
from .job import Job, build_concept_jobs, build_job
from .models import ASPECT_RATIOS, MODELS
from .params import BACKENDS, Settings, load_settings
from .runner import SceneResult, Summary, check_writable, run_jobs
from .scenes import load_concept, parse_duration


class S9Group(click.Group):
    """Library errors become one line on stderr and an exit code; never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except S9Error as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted: in-flight work was canceled and no partial clip was kept", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            # A bug, not bad input: still one line, with a way to get the traceback for a report.
            if os.environ.get("S9_DEBUG"):
                raise
            click.secho(f"error: internal error ({type(exc).__name__}: {exc}); set S9_DEBUG=1 for the traceback",
                        fg="red", err=True)
            ctx.exit(1)


@click.group(cls=S9Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s9")
def cli() -> None:
    """Turn a concept's scene prompts and first frames into one video clip per scene."""


def _settings_options(func):
    options = [
        click.option("--params", "params_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Settings file (default: ./params.yaml when present)."),
        click.option("--model", type=click.Choice(list(MODELS)), help="Video model (default from params)."),
        click.option("--aspect-ratio", type=click.Choice(list(ASPECT_RATIOS)), help="Aspect ratio."),
        click.option("--duration", type=float, help="Seconds; snapped to what the model accepts."),
        click.option("--backend", type=click.Choice(list(BACKENDS)), help="Where clips are made."),
        click.option("--batch", help="Batch folder name (default: read off the prompts path, else params)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(params_file: Path | None, model: str | None, aspect_ratio: str | None, backend: str | None,
              duration: float | None) -> Settings:
    settings = load_settings(params_file)
    if duration is not None:
        parse_duration(duration, "--duration")
    return settings.with_overrides(video_model=model, aspect_ratio=aspect_ratio, backend=backend)


def _warn(jobs: list[Job]) -> None:
    shown: set[str] = set()
    for job in jobs:
        for warning in job.warnings:
            if warning not in shown:  # the same adjustment for every scene is said once
                shown.add(warning)
                click.secho(f"⚠ {warning}", fg="yellow", err=True)


class _Progress:
    """Per-scene lines always; a live bar only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self.bar = None
        if sys.stderr.isatty() and total > 1:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("scenes", total=total)

    def __enter__(self) -> _Progress:
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
        _print_result(result)


def _print_result(result: SceneResult) -> None:
    if result.ok:
        assert result.job is not None
        click.secho(f"✓ Scene {result.scene_number}: {result.job.output} ({result.seconds:.1f}s)", fg="green")
    else:
        click.secho(f"✗ Scene {result.scene_number} failed: {result.error}", fg="red", err=True)


def _print_summary(summary: Summary, settings: Settings, backend: str) -> None:
    clips = [f for f in summary.files_written if f.suffix == ".mp4"]
    debug = [f for f in summary.files_written if f.suffix == ".txt"]
    minutes = summary.seconds / 60
    click.echo(f"Parallel workers: {summary.workers}")
    click.echo(f"Scenes: {len(summary.results)}")
    click.echo(f"Model: {MODELS[settings.video_model].label}")
    click.echo(f"Backend: {backend}")
    click.echo(f"Time: {summary.seconds:.1f} seconds ({minutes:.1f} minutes)")
    click.echo(f"Files generated: {len(clips) + len(debug)} total")
    click.echo(f"  - {len(clips)} video clips")
    click.echo(f"  - {len(debug)} debug prompt files")
    click.echo(summary.success_rate())


def _run(jobs: list[Job], settings: Settings, workers: int, skipped: list[SceneResult]) -> Summary:
    backend = get_backend(settings.backend, settings)
    backend.check()
    for folder in {job.output.parent for job in jobs}:
        check_writable(folder)
    _warn(jobs)
    try:
        with _Progress(len(jobs)) as progress:
            summary = run_jobs(jobs, backend, workers, progress)
    finally:
        backend.close()
    summary.results = skipped + summary.results
    summary.results.sort(key=lambda r: r.scene_number)
    return summary


@cli.command()
@click.argument("scene_prompts_json", type=click.Path(path_type=Path))
@click.argument("scene_number", type=click.IntRange(min=1))
@click.argument("first_frame", type=click.Path(path_type=Path))
@click.argument("output_path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@_settings_options
def clip(scene_prompts_json: Path, scene_number: int, first_frame: Path, output_path: Path | None,
         params_file: Path | None, model: str | None, aspect_ratio: str | None, duration: float | None,
         backend: str | None, batch: str | None) -> None:
    """Generate one scene's clip (and its debug file).

    Without OUTPUT_PATH the clip goes to {outputs}/{batch}/{concept}/{concept}_p{N}_{model_suffix}.mp4.
    """
    settings = _settings(params_file, model, aspect_ratio, backend, duration)
    concept = load_concept(scene_prompts_json)
    job = build_job(concept, scene_number, first_frame, settings, output=output_path, batch=batch,
                    duration=duration)
    if output_path is not None and output_path.suffix.lower() != ".mp4":
        raise InputError(f"{output_path}: output path must end in .mp4")
    summary = _run([job], settings, 1, [])
    if not summary.ok:
        sys.exit(1)


def _scene_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("expected scene numbers separated by commas, e.g. 1,3") from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter("scene numbers start at 1")
    return list(dict.fromkeys(numbers))


@cli.command()
@click.argument("scene_prompts_json", type=click.Path(path_type=Path))
@click.option("--frames", "frames_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder with {concept}_p{N}_first_frame.jpg files (step 8's output).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for this concept's clips (default: {outputs}/{batch}/{concept}).")
@click.option("--scenes", "scene_numbers", callback=_scene_list, help="Only these scene numbers, e.g. 1,3.")
@click.option("--workers", type=click.IntRange(1, 64), help="Scenes generated at once (default from params).")
@_settings_options
def generate(scene_prompts_json: Path, frames_dir: Path, out_dir: Path | None, scene_numbers: list[int] | None,
             workers: int | None, params_file: Path | None, model: str | None, aspect_ratio: str | None,
             duration: float | None, backend: str | None, batch: str | None) -> None:
    """Generate every scene of one concept in parallel, then print a summary."""
    settings = _settings(params_file, model, aspect_ratio, backend, duration)
    concept = load_concept(scene_prompts_json)
    if not frames_dir.is_dir():
        raise InputError(f"{frames_dir}: first frames folder not found")
    jobs, missing = build_concept_jobs(concept, frames_dir, settings, scene_numbers=scene_numbers,
                                       out_dir=out_dir, batch=batch, duration=duration)
    skipped = []
    for number in missing:
        click.secho(f"✗ Scene {number}: First frame not found, skipping", fg="red", err=True)
        skipped.append(SceneResult(f"{concept.name} scene {number}", number, ok=False, skipped=True,
                                   error="First frame not found"))
    summary = _run(jobs, settings, workers or settings.max_workers, skipped)
    _print_summary(summary, settings, settings.backend)
    if not summary.ok:
        sys.exit(1)


def _mount_fake_replicate() -> None:
    from .fake_replicate import fake_replicate_command

    cli.add_command(fake_replicate_command)


_mount_fake_replicate()


# -- DVC pipeline commands: thin wrappers over s9.pipeline ----------------------------------------------------
def _root() -> Path:
    from .pipeline import find_root

    return find_root()


@cli.command("add")
@click.argument("scene_prompts_json", type=click.Path(path_type=Path))
@click.argument("frames_dir", type=click.Path(path_type=Path))
@click.option("--batch", help="Batch folder under data/ (default: read off the prompts path, else params).")
def add_cmd(scene_prompts_json: Path, frames_dir: Path, batch: str | None) -> None:
    """Copy a concept's step-7 prompts and step-8 frames into data/ and register its scene stages."""
    from .pipeline import add_concept

    result = add_concept(_root(), scene_prompts_json, frames_dir, batch)
    for path in result.sync.written_templates:
        click.echo(f"Wrote {path.name} (from the s9 template)")
    click.echo(f"Registered {result.concept} (batch {result.batch}): {result.scenes} scene(s) copied to data/; "
               f"{len(result.sync.entries)} scene stage(s) in total")
    click.echo("Next: `s9 plan` to see the cost, `s9 repro` to generate.")


@cli.command("remove")
@click.argument("concept")
@click.option("--outputs", is_flag=True, help="Also delete the concept's clips and debug folders.")
def remove_cmd(concept: str, outputs: bool) -> None:
    """Unregister a concept: delete its data/ files (and with --outputs its clips) and its scene stages."""
    from .pipeline import remove_concept

    result = remove_concept(_root(), concept, outputs=outputs)
    click.echo(f"Removed {result.concept} (batch {result.batch}); {len(result.sync.entries)} scene stage(s) left")


@cli.command("sync")
@click.option("--print-template", is_flag=True, help="Print the dvc.yaml scene stage block and exit.")
def sync_cmd(print_template: bool) -> None:
    """Regenerate s9_scenes.yaml (the scene list dvc.yaml iterates) from data/ and params.yaml."""
    from .pipeline import VARS_FILE, sync, template_text

    if print_template:
        click.echo(template_text("dvc.yaml"), nl=False)
        return
    result = sync(_root())
    for path in result.written_templates:
        click.echo(f"Wrote {path.name} (from the s9 template)")
    state = "updated" if result.changed else "unchanged"
    click.echo(f"{VARS_FILE} {state}: {len(result.entries)} scene stage(s) of {len(result.concepts)} concept(s)"
               + (f" (+{len(result.added)} / -{len(result.removed)})" if result.changed else ""))


@cli.command("status")
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-outputs", is_flag=True,
              help="Ignore the clips themselves (missing, edited, not in cache): only check dvc.lock against "
                   "prompts, frames and params, e.g. in CI without `dvc pull`.")
def status_cmd(targets: tuple[str, ...], as_json: bool, no_outputs: bool) -> None:
    """List stale scenes per concept with the reason; exit 1 when anything is stale (for CI).

    Agrees with `dvc status`, but reads dvc.lock and cached file hashes directly, so it stays fast at
    hundreds of scenes. Re-syncs s9_scenes.yaml first. TARGETS: stage names (scene@x_p1 or x_p1) or concept
    names; none means every scene."""
    import json

    from .pipeline import status

    report = status(_root(), list(targets) or None, outputs=not no_outputs)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        totals: dict[str, int] = {}
        for scene in report.scenes:
            totals[scene.entry.concept] = totals.get(scene.entry.concept, 0) + 1
        for concept, scenes in report.by_concept().items():
            click.echo(f"{concept} (batch {scenes[0].entry.batch}): {len(scenes)} of {totals[concept]} scene(s) stale")
            for scene in scenes:
                why = "; ".join(r.message for r in scene.reasons)
                click.echo(f"  scene {scene.entry.scene:<3} {scene.entry.stage}: {why}")
        if report.up_to_date:
            click.echo(f"All {len(report.scenes)} scene(s) up to date.")
        else:
            click.echo(f"{len(report.stale)} of {len(report.scenes)} scene(s) stale: run `s9 plan`, then `s9 repro`.")
    sys.exit(0 if report.up_to_date else 1)


def _print_plan(the_plan) -> None:  # noqa: ANN001 - s9.pipeline.Plan, imported lazily
    for item in the_plan.scenes:
        cost = item.how if item.restorable else f"${item.cost_usd:.2f}"
        click.echo(f"  {item.stage:<40} {item.model:<20} {item.seconds:>3} s  {item.backend:<9} {cost}")
    budget = "" if the_plan.max_spend_usd is None else f" (budget ${the_plan.max_spend_usd:.2f})"
    restored = f", {len(the_plan.restored)} not generated (run cache / re-record)" if the_plan.restored else ""
    click.echo(f"Total: {len(the_plan.to_generate)} scene(s) to generate, {the_plan.total_seconds} s of video, "
               f"estimated ${the_plan.total_usd:.2f}{budget}{restored}")


@cli.command("plan")
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan_cmd(targets: tuple[str, ...], as_json: bool) -> None:
    """Show what `s9 repro` would generate and its estimated cost; generates nothing, calls no API.

    TARGETS: stage names (scene@x_p1 or x_p1) or concept names; none means every scene."""
    import json

    from .pipeline import plan

    the_plan = plan(_root(), list(targets) or None)
    if as_json:
        click.echo(json.dumps(the_plan.as_dict(), indent=2))
        return
    if not the_plan.scenes:
        click.echo("Nothing to generate: every scene is up to date.")
        return
    _print_plan(the_plan)
    if the_plan.over_budget:
        click.secho("⚠ over budget: `s9 repro` will refuse to start", fg="yellow", err=True)


@cli.command("repro")
@click.argument("targets", nargs=-1)
@click.option("-j", "--jobs", "workers", type=click.IntRange(1, 64),
              help="Scenes generated at once (default: params max_workers).")
def repro_cmd(targets: tuple[str, ...], workers: int | None) -> None:
    """Generate every stale scene stage concurrently and record them in dvc.lock, as `dvc repro` would.

    Refuses to start (exit 2) when the plan's estimate exceeds budget.max_spend_usd. A failed scene stays
    stale; the others are recorded; exit 1 with the summary. TARGETS: stage names (scene@x_p1 or x_p1) or
    concept names; none means every stale scene.
    """
    from .pipeline import repro

    shown: set[str] = set()

    def listener(kind: str, result: SceneResult) -> None:
        if kind == "start" and result.job is not None:
            for warning in result.job.warnings:
                if warning not in shown:
                    shown.add(warning)
                    click.secho(f"⚠ {warning}", fg="yellow", err=True)
        elif kind == "done":
            _print_result(result)

    result = repro(_root(), list(targets) or None, workers=workers, listener=listener)
    if not result.plan.scenes:
        click.echo("Every scene is up to date: nothing to do.")
        return
    if result.restored:
        click.echo(f"Restored from DVC's run cache: {len(result.restored)} scene(s)")
    if result.rerecorded:
        click.echo(f"Re-recorded (prompt entry only moved in its list): {len(result.rerecorded)} scene(s)")
    if result.summary.results:
        settings = load_settings(Path("params.yaml") if Path("params.yaml").exists() else None)
        _print_summary(result.summary, settings, settings.backend)
    click.echo(f"Recorded in dvc.lock: {len(result.recorded)} stage(s)")
    if not result.ok:
        click.secho("Failed scenes stay stale: fix them, then `s9 repro` again.", fg="red", err=True)
        sys.exit(1)


@cli.command("stage")
@click.argument("scene_prompts_json", type=click.Path(path_type=Path))
@click.argument("scene_number", type=click.IntRange(min=1))
@click.argument("first_frame", type=click.Path(path_type=Path))
@click.argument("clip_path", type=click.Path(dir_okay=False, path_type=Path))
def stage_cmd(scene_prompts_json: Path, scene_number: int, first_frame: Path, clip_path: Path) -> None:
    """One dvc.yaml scene stage (what `dvc repro` runs): like `s9 clip`, reading ./params.yaml, but it refuses
    an out name that does not match the configured model (run `s9 sync`)."""
    from .pipeline import run_stage

    summary = run_stage(scene_prompts_json, scene_number, first_frame, clip_path, _Progress(1))
    if not summary.ok:
        sys.exit(1)


def main() -> None:
    cli(prog_name="s9")


if __name__ == "__main__":
    main()
