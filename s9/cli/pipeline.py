"""DVC pipeline commands: thin wrappers over `s9.pipeline` (which is imported lazily: DVC is slow to import)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..params import load_settings
from ..runner import SceneResult
from .app import cli
from .output import Progress, print_result, print_summary


def _root() -> Path:
    from ..pipeline import find_root

    return find_root()


@cli.command("add")
@click.argument("scene_prompts_json", type=click.Path(path_type=Path))
@click.argument("frames_dir", type=click.Path(path_type=Path))
@click.option("--batch", help="Batch folder under data/ (default: read off the prompts path, else params).")
def add_cmd(scene_prompts_json: Path, frames_dir: Path, batch: str | None) -> None:
    """Copy a concept's step-7 prompts and step-8 frames into data/ and register its scene stages."""
    from ..pipeline import add_concept

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
    from ..pipeline import remove_concept

    result = remove_concept(_root(), concept, outputs=outputs)
    click.echo(f"Removed {result.concept} (batch {result.batch}); {len(result.sync.entries)} scene stage(s) left")


@cli.command("sync")
@click.option("--print-template", is_flag=True, help="Print the dvc.yaml scene stage block and exit.")
def sync_cmd(print_template: bool) -> None:
    """Regenerate s9_scenes.yaml (the scene list dvc.yaml iterates) from data/ and params.yaml."""
    from ..pipeline import VARS_FILE, sync, template_text

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

    from ..pipeline import status

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

    from ..pipeline import plan

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
    from ..pipeline import repro

    shown: set[str] = set()

    def listener(kind: str, result: SceneResult) -> None:
        if kind == "start" and result.job is not None:
            for warning in result.job.warnings:
                if warning not in shown:
                    shown.add(warning)
                    click.secho(f"⚠ {warning}", fg="yellow", err=True)
        elif kind == "done":
            print_result(result)

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
        print_summary(result.summary, settings, settings.backend)
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
    from ..pipeline import run_stage

    summary = run_stage(scene_prompts_json, scene_number, first_frame, clip_path, Progress(1))
    if not summary.ok:
        sys.exit(1)
