"""Commands that work without DVC: one scene (`s9 clip`) or one concept (`s9 generate`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..backends import get_backend
from ..errors import InputError
from ..job import Job, build_concept_jobs, build_job
from ..models import ASPECT_RATIOS, MODELS, did_you_mean
from ..params import BACKENDS, MAX_WORKERS, Settings, load_settings
from ..runner import SceneResult, Summary, check_writable, run_jobs
from ..scenes import load_concept, parse_duration
from ..takes import describe_takes, fresh_take
from .app import cli
from .output import Progress, print_skipped, print_summary
from .screen import SCREEN


class ModelId(click.ParamType):
    """A model id; a near miss (`veo-3.1-fast`, a typo) is refused with the id it most likely meant."""

    name = "model"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "MODEL"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value in MODELS:
            return str(value)
        guess = did_you_mean(value)
        hint = f"did you mean {guess}? " if guess else ""
        self.fail(f"unknown model {value!r} ({hint}valid: {', '.join(MODELS)})", param, ctx)


def _from_params(key: str) -> str:
    """What --help shows as an option's default: params.yaml's value, else the built-in one."""
    return f"params.yaml {key}, else {getattr(Settings(), key.rsplit('.', 1)[-1])}"


def _settings_options(func):
    options = [
        click.option("--params", "params_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Settings file.", show_default="./params.yaml when present, else built-in defaults"),
        click.option("--model", type=ModelId(), help=f"Video model: {', '.join(MODELS)} (`s9 models`).",
                     show_default=_from_params("video_settings.video_model")),
        click.option("--aspect-ratio", type=click.Choice(list(ASPECT_RATIOS)), help="Aspect ratio.",
                     show_default=_from_params("video_settings.aspect_ratio")),
        click.option("--duration", type=float, help="Seconds; snapped to what the model accepts.",
                     show_default="the scene's duration_seconds, else "
                                  + _from_params("video_settings.duration_seconds")),
        click.option("--backend", type=click.Choice(list(BACKENDS)), help="Where clips are made.",
                     show_default=_from_params("video_settings.backend")),
        click.option("--batch", help="Batch folder name (wins over the one read off the prompts path).",
                     show_default="the folder above the concept's in the prompts path, else params.yaml "
                                  "output.batch"),
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


_NEW_TAKE_HELP = ("Make a new clip even though nothing changed: a new prediction (shown with its cost first) "
                  "instead of the one the journal would reuse; offline, a different render.")


def _run(jobs: list[Job], settings: Settings, workers: int, skipped: list[SceneResult],
         new_take: bool = False) -> Summary:
    if new_take:
        jobs = [fresh_take(job) for job in jobs]
    backend = get_backend(settings.backend, settings)
    backend.check()
    backend.preflight(jobs)  # the model's schema: a mismatch is one line, exit 2, before anything is uploaded
    for folder in {job.output.parent for job in jobs}:
        check_writable(folder)
    # Only now that no input error can follow (that must stay the one line on stderr): the skipped scenes,
    # before anything is generated.
    for result in skipped:
        print_skipped(result)
    if new_take:  # the cost of what is about to be created, before anything is
        for line in describe_takes(jobs, settings):
            SCREEN.line(line, "cyan", err=True)
    try:
        with Progress() as progress:  # says each job's warnings (naming concept and scenes) before it starts
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
@click.option("--new-take", is_flag=True, help=_NEW_TAKE_HELP)
def clip(scene_prompts_json: Path, scene_number: int, first_frame: Path, output_path: Path | None,
         params_file: Path | None, model: str | None, aspect_ratio: str | None, duration: float | None,
         backend: str | None, batch: str | None, new_take: bool) -> None:
    """Generate one scene's clip (and its debug file).

    Without OUTPUT_PATH the clip goes to {outputs}/{batch}/{concept}/{concept}_p{N}_{model_suffix}.mp4.
    """
    settings = _settings(params_file, model, aspect_ratio, backend, duration)
    concept = load_concept(scene_prompts_json)
    job = build_job(concept, scene_number, first_frame, settings, output=output_path, batch=batch,
                    duration=duration)
    if output_path is not None and output_path.suffix.lower() != ".mp4":
        raise InputError(f"{output_path}: output path must end in .mp4")
    summary = _run([job], settings, 1, [], new_take)
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
              help="Folder for this concept's clips.", show_default="{video_outputs_dir}/{batch}/{concept}")
@click.option("--scenes", "scene_numbers", callback=_scene_list, help="Only these scene numbers, e.g. 1,3.",
              show_default="every scene")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), help="Scenes generated at once.",
              show_default=_from_params("video_settings.max_workers"))
@_settings_options
@click.option("--new-take", is_flag=True, help=_NEW_TAKE_HELP)
def generate(scene_prompts_json: Path, frames_dir: Path, out_dir: Path | None, scene_numbers: list[int] | None,
             workers: int | None, params_file: Path | None, model: str | None, aspect_ratio: str | None,
             duration: float | None, backend: str | None, batch: str | None, new_take: bool) -> None:
    """Generate every scene of one concept in parallel, then print a summary."""
    settings = _settings(params_file, model, aspect_ratio, backend, duration)
    concept = load_concept(scene_prompts_json)
    if not frames_dir.is_dir():
        raise InputError(f"{frames_dir}: first frames folder not found")
    # Every scene's inputs are checked here, before anything is uploaded or written; a bad one is skipped.
    jobs, problems = build_concept_jobs(concept, frames_dir, settings, scene_numbers=scene_numbers,
                                        out_dir=out_dir, batch=batch, duration=duration)
    skipped = [SceneResult(f"{concept.name} scene {number}", number, ok=False, skipped=True, error=problem)
               for number, problem in problems.items()]
    summary = _run(jobs, settings, workers or settings.max_workers, skipped, new_take)
    print_summary(summary, settings, settings.backend)
    if not summary.ok:
        sys.exit(1)
