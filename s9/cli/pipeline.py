"""DVC pipeline commands: thin wrappers over `s9.pipeline` (imported lazily: DVC is slow to import)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..params import MAX_WORKERS
from .app import cli
from .output import Progress, print_summary, warning_line

_TARGETS_HELP = ("TARGETS: concepts, scenes (tiny_p1) or DVC stage addresses (pipelines/b1/tiny/dvc.yaml:p1); "
                 "none means every scene.")


def _root() -> Path:
    from ..pipeline import find_root

    return find_root()


def _print_sync(result: Any) -> None:
    for path in result.written:
        click.echo(f"Wrote {path}")
    if result.migrated:
        click.echo("Migrated the s9 0.1 layout: each concept now has its own pipeline under pipelines/")
    for folder in result.removed:
        click.echo(f"Removed {folder} (its concept is no longer registered)")
    for address in result.pruned:
        click.echo(f"Pruned the lock entry of {address} (no such scene any more)")
    for path in result.tidied:
        click.echo(f"Removed {path} (no stage declares it; it stays in DVC's cache)")
    for path in result.kept:
        click.secho(f"⚠ kept {path}: no stage declares it, and DVC's cache does not hold it", fg="yellow", err=True)


@cli.command("add")
@click.argument("scene_prompts_json", type=click.Path(path_type=Path))
@click.argument("frames_dir", type=click.Path(path_type=Path))
@click.option("--batch", help="Batch folder under data/ (wins over the one read off the prompts path).",
              show_default="the folder above the concept's in the prompts path, else params.yaml output.batch")
def add_cmd(scene_prompts_json: Path, frames_dir: Path, batch: str | None) -> None:
    """Copy a concept's step-7 prompts and step-8 frames into data/ and write its pipeline."""
    from ..pipeline import add_concept

    result = add_concept(_root(), scene_prompts_json, frames_dir, batch)
    _print_sync(result.sync)
    click.echo(f"Registered {result.concept} (batch {result.batch}): {result.scenes} scene(s) copied to data/, "
               f"its pipeline in pipelines/{result.batch}/{result.concept}/")
    click.echo("Next: `s9 plan` to see the cost, `s9 repro` to generate.")


@cli.command("remove")
@click.argument("concept")
@click.option("--outputs", is_flag=True, help="Also delete clips DVC's cache does not hold.")
def remove_cmd(concept: str, outputs: bool) -> None:
    """Unregister a concept: its data/ files, its pipeline, and its clips (kept in DVC's cache)."""
    from ..pipeline import remove_concept

    result = remove_concept(_root(), concept, outputs=outputs)
    _print_sync(result.sync)
    click.echo(f"Removed {result.concept} (batch {result.batch}): its data/ files and pipeline")


@cli.command("sync")
@click.option("--print-template", "template", type=click.Choice(["dvc.yaml", "params.yaml"]),
              help="Print the root dvc.yaml or the params.yaml template and exit.")
def sync_cmd(template: str | None) -> None:
    """Make every concept's pipeline match data/ and params.yaml (after a model change, say); tidy outputs."""
    from ..pipeline import sync, template_text

    if template:
        click.echo(template_text(template), nl=False)
        return
    result = sync(_root())
    _print_sync(result)
    state = "updated" if result.changed else "already up to date"
    click.echo(f"Pipelines {state}: {result.scenes} scene stage(s) of {result.concepts} concept(s)")


def _fix_hint(fix: str) -> str:
    return {"dvc checkout": "run `dvc checkout` (the clips are in DVC's cache)",
            "dvc pull": "run `dvc pull` (or `s9 repro`, which pulls before it generates anything)"}.get(
        fix, "run `s9 plan`, then `s9 repro`")


_STATUS_HELP = """List stale scenes per concept with the reason and the fix; exit 1 when anything is stale (for CI).

    Agrees with `dvc status` (and sees which scene a prompt edit reaches before the `inputs` stage runs),
    but reads dvc.lock and cached file hashes directly, so it stays fast at thousands of scenes. Writes
    nothing git tracks. """


@cli.command("status", help=_STATUS_HELP + _TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-outputs", is_flag=True,
              help="Ignore the clips themselves (missing, edited, not in cache): only check dvc.lock against "
                   "prompts, frames and params, e.g. in CI without `dvc pull`.")
def status_cmd(targets: tuple[str, ...], as_json: bool, no_outputs: bool) -> None:
    from ..pipeline import status

    report = status(_root(), list(targets) or None, outputs=not no_outputs)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        sys.exit(0 if report.up_to_date else 1)
    for concept in report.concepts:
        stale = concept.stale_scenes
        if concept.stale:
            ref = concept.decl.ref
            click.echo(f"{ref.name} (batch {ref.batch}): {len(stale)} of {len(concept.scenes)} scene(s) stale")
        for reason in concept.reasons:
            click.echo(f"  {reason.message}")
        for scene in stale:
            why = "; ".join(r.message for r in scene.reasons)
            fix = "" if scene.fix == "s9 repro" else f" → `{scene.fix}`"
            click.echo(f"  scene {scene.decl.number:<3} {scene.decl.key}: {why}{fix}")
            if scene.last_error:  # why the last attempt did not make it, so nobody reruns blind
                click.secho(f"            last run failed: {scene.last_error}", fg="red")
        for path in concept.leftovers:
            click.secho(warning_line(concept.decl.ref.name, f"{path} is not declared by any stage (`s9 sync` "
                                     "removes it)"), fg="yellow", err=True)
    for folder in report.orphans:
        click.echo(f"{folder}: its concept is no longer registered (`s9 sync` removes the pipeline)")
    if report.root_problem:
        click.secho(f"⚠ {report.root_problem}", fg="yellow", err=True)
    if report.up_to_date:
        click.echo(f"All {report.total} scene(s) up to date.")
        return
    click.echo(f"{len(report.stale)} of {report.total} scene(s) stale: {_fix_hint(report.fix())}.")
    sys.exit(1)


def _print_plan(the_plan: Any) -> None:
    for item in the_plan.scenes:
        if item.problem:
            cost = f"cannot generate: {item.problem}"
        elif item.how == "restore":
            cost = "$0.00 (in DVC's cache)"
        elif item.how == "pull":
            cost = "$0.00 (on the DVC remote)"
        else:
            cost = f"${item.cost_usd:.2f}"
        click.echo(f"  {item.status.decl.key:<30} {item.model:<20} {item.seconds:>3} s  {item.backend:<9} {cost}")
    budget = "" if the_plan.max_spend_usd is None else f" (budget ${the_plan.max_spend_usd:.2f})"
    restored = f"; {len(the_plan.restored)} restored from DVC's cache or remote at $0" if the_plan.restored else ""
    click.echo(f"Total: {len(the_plan.to_generate)} scene(s) to generate, {the_plan.total_seconds} s of video, "
               f"estimated ${the_plan.total_usd:.2f}{budget}{restored}")


_PLAN_HELP = """Show what `s9 repro` would restore, pull or generate, and the estimated cost; writes nothing.

    """


@cli.command("plan", help=_PLAN_HELP + _TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-pull", is_flag=True, help="Do not look on the DVC remote for what it already holds.")
@click.option("--new-take", is_flag=True, help="Price a fresh take of the TARGETS' scenes (see `s9 repro`).")
def plan_cmd(targets: tuple[str, ...], as_json: bool, no_pull: bool, new_take: bool) -> None:
    from ..pipeline import plan

    the_plan = plan(_root(), list(targets) or None, pull=not no_pull, new_take=new_take)
    if as_json:
        click.echo(json.dumps(the_plan.as_dict(), indent=2))
        return
    if not the_plan.scenes:
        click.echo("Nothing to generate: every scene is up to date.")
        return
    _print_plan(the_plan)
    for item in the_plan.blocked:
        click.secho(warning_line(item.status.decl.ref.name, f"{item.status.decl.key}: {item.problem}"), fg="yellow",
                    err=True)
    if the_plan.over_budget:
        click.secho("⚠ over budget: `s9 repro` will refuse to start", fg="yellow", err=True)


def _print_repro(result: Any, root: Path) -> None:
    from ..pipeline.declare import project_settings

    if result.restored:
        click.echo(f"Restored from DVC's cache or remote: {len(result.restored)} scene(s)")
    if result.summary.results:
        settings = project_settings(root)
        print_summary(result.summary, settings, settings.backend)
    for address in result.changed:
        concept = address.split("/")[2]
        scene = address.rsplit(":p", 1)[-1]
        click.secho(warning_line(concept, f"scene {scene} ({address}): an input changed while it was generated; "
                                 "not recorded (still stale)"), fg="yellow", err=True)
    if result.shard is not None:
        click.echo(f"Shard {result.shard}: pushed to the DVC remote (clips and run-cache entries): "
                   f"{len(result.pushed)} scene(s); already there: {len(result.on_remote)}; dvc.lock untouched")
        for address in result.unpushed:
            click.secho(f"✗ {address}: made here but could not be pushed to the DVC remote; run the shard again",
                        fg="red", err=True)
        if result.journal_unmirrored:
            click.secho(f"⚠ {result.journal_unmirrored} journal entries could not be mirrored on the DVC remote",
                        fg="yellow", err=True)
        return
    click.echo(f"Recorded in dvc.lock: {len(result.recorded)} scene stage(s)")


_REPRO_HELP = """Bring every stale scene up to date concurrently and record it in dvc.lock, as `dvc repro` would.

    Takes DVC's repo lock first. Restores what DVC's cache or remote already holds before paying for
    anything; refuses to start (exit 2) when the estimate exceeds budget.max_spend_usd. A failed scene stays
    stale, the others are recorded; exit 1 with the summary. """


@cli.command("repro", help=_REPRO_HELP + _TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("-j", "--jobs", "workers", type=click.IntRange(1, MAX_WORKERS), help="Scenes generated at once.",
              show_default="params.yaml video_settings.max_workers, else 3")
@click.option("--no-pull", is_flag=True, help="Do not fetch from the DVC remote before generating.")
@click.option("--new-take", is_flag=True,
              help="A new clip for each scene the TARGETS name even though its inputs are unchanged: a new "
                   "prediction (its cost shown first), never restored from DVC's cache; recorded in dvc.lock.")
@click.option("--shard", metavar="K/N",
              help="Only the stale scenes of shard K of N (concepts assigned by a hash of their name); push each "
                   "finished scene's clips and run-cache entry to the default DVC remote; leave dvc.lock alone.")
def repro_cmd(targets: tuple[str, ...], workers: int | None, no_pull: bool, new_take: bool,
              shard: str | None) -> None:
    from ..pipeline import plan, repro
    from ..pipeline.shard import Shard

    root = _root()
    chosen = Shard.parse(shard) if shard is not None else None
    if new_take and chosen is not None:
        raise click.UsageError("--new-take and --shard: a take is asked for by name, on one machine")
    if new_take:  # what the takes cost, before anything is created (the budget check follows in repro)
        the_plan = plan(root, list(targets) or None, pull=not no_pull, new_take=True)
        takes = [p for p in the_plan.to_generate if any(r.kind == "take" for r in p.status.reasons)]
        for item in takes:
            click.secho(f"[{item.status.decl.ref.name}] fresh take of scene {item.status.decl.number} "
                        f"({item.model}, {item.seconds} s, {item.backend}): ${item.cost_usd:.2f}", fg="cyan",
                        err=True)
        click.secho(f"Fresh takes: {len(takes)} scene(s), estimated ${sum(p.cost_usd for p in takes):.2f}",
                    fg="cyan", err=True)
    with Progress() as progress:  # live per-scene phases on a terminal, from the first scene generated
        result = repro(root, list(targets) or None, workers=workers, listener=progress, pull=not no_pull,
                       new_take=new_take, shard=chosen)
    if not result.plan.how and not result.resolved:
        click.echo("Every scene is up to date: nothing to do.")
        return
    _print_repro(result, root)
    if not result.ok:
        click.secho("Failed scenes stay stale: fix them, then `s9 repro` again.", fg="red", err=True)
        sys.exit(1)


@cli.group("exp")
def exp_group() -> None:
    """Experiments: compare settings (the model, say) as DVC experiments."""


@exp_group.command("run")
@click.option("-S", "--set-param", "overrides", multiple=True, metavar="KEY=VALUE",
              help="A params.yaml value for this experiment, e.g. video_settings.video_model=openai/sora-2.")
@click.option("--queue", is_flag=True, help="Queue it for `dvc queue start`; the workspace stays as it is.")
@click.option("--temp", is_flag=True, help="Run it in a temporary folder; the workspace stays as it is.")
@click.option("-n", "--name", help="The experiment's name.")
@click.option("-j", "--jobs", "workers", type=click.IntRange(1, MAX_WORKERS), help="Scenes generated at once.",
              show_default="params.yaml video_settings.max_workers, else 3")
def exp_run_cmd(overrides: tuple[str, ...], queue: bool, temp: bool, name: str | None, workers: int | None) -> None:
    """Run an experiment like `dvc exp run -S …`, also for the keys that rename clips (the model).

    In the workspace it runs `s9 repro` (in parallel) and saves the experiment (`dvc exp show` lists it)."""
    from ..pipeline import exp_run

    root = _root()
    with Progress() as progress:
        result = exp_run(root, list(overrides), queue=queue, temp=temp, name=name, workers=workers,
                         listener=progress)
    if result.repro is not None:
        _print_repro(result.repro, root)
        if not result.repro.ok:
            click.secho("The experiment was not saved: failed scenes stay stale.", fg="red", err=True)
            sys.exit(1)
        click.echo(f"Saved experiment {result.name} (`dvc exp show` compares it)")
    elif result.mode == "queue":
        click.echo("Queued: `dvc queue start` runs it, `dvc exp show` compares it")
    else:
        click.echo("Ran in a temporary folder: `dvc exp show` compares it, `dvc exp apply` brings it here")


@cli.command("stage")
@click.argument("pipeline_dir")
@click.argument("scene_number", type=click.IntRange(min=1))
@click.argument("clip_path")
def stage_cmd(pipeline_dir: str, scene_number: int, clip_path: str) -> None:
    """(Run by `dvc repro`.) One scene stage: make scene N's clip from its entry in inputs.json."""
    from ..pipeline import run_stage

    summary = run_stage(pipeline_dir, scene_number, clip_path, Progress(live=False))  # DVC's output: plain
    if not summary.ok:
        sys.exit(1)


@cli.command("resolve")
@click.argument("pipeline_dir")
def resolve_cmd(pipeline_dir: str) -> None:
    """(Run by `dvc repro`.) A concept's `inputs` stage: write each scene's resolved input to inputs.json."""
    from ..pipeline import resolve_stage

    click.echo(f"Wrote {resolve_stage(pipeline_dir)}")
