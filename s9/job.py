"""A scene + its first frame (+ the next scene's, for continuity) + settings + model -> one fully resolved
generation request (`Job`).

The fingerprint of everything that shapes a clip is computed here, once: the prediction journal, the
offline renderer's seed and the debug file all read it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import InputError
from .frames import (  # noqa: F401 - re-exported: where a job's images come from
    FIRST_FRAME_PATTERN,
    MAX_FRAME_PIXELS,
    check_image,
    file_sha256,
    first_frame_path,
    scene_input_problem,
)
from .models import SCENE_EXTRAS, ModelSpec, get_model, sunset_warning
from .models.schema import Schema, snapshot_schema
from .params import Settings
from .scenes import Concept, Scene, check_batch_name

# Stand in for the upload URLs inside the fingerprint: upload URLs change on every upload.
IMAGE_PLACEHOLDER = "<first-frame>"
NEXT_FRAME_PLACEHOLDER = "<next-first-frame>"
NEXT_FIRST_FRAME = "next_first_frame"  # video_settings.continuity


class ImageURIs(str):
    """What `Backend.upload` returns: the first frame's URI (a plain `str` to whoever prints it) carrying the
    end frame's URI too, so `job.api_input(uri)` fills every image field the model takes (`Job.images`)."""

    last_frame: str | None

    def __new__(cls, first_frame: str, last_frame: str | None = None) -> ImageURIs:
        uris = super().__new__(cls, first_frame)
        uris.last_frame = last_frame
        return uris


@dataclass(frozen=True)
class Job:
    concept: str
    batch: str
    scene: Scene
    model: ModelSpec
    prompts_path: Path
    first_frame: Path
    first_frame_display: str  # a portable (relative) path for the debug file
    frame_sha256: str
    duration: int
    requested_aspect: str
    aspect: str  # the model's own aspect value
    resolution: str
    generate_audio: bool
    width: int | None  # None: the model's output takes the first frame's shape (checked only by duration)
    height: int | None
    output: Path
    warnings: tuple[str, ...]
    fingerprint: str
    next_frame: Path | None = None  # continuity: the next scene's first frame, the clip's end frame
    next_frame_sha256: str | None = None
    preview_size: tuple[int, int] = (1280, 720)  # what the offline renderer makes
    # A fresh take (`--new-take`): 0 for an ordinary run; N asks for a new clip of unchanged inputs. Not part of
    # the fingerprint (the inputs are the same, and so is the journal entry it replaces, keeping what the old
    # prediction cost); the offline renderer mixes it into its seed, so a take is different bytes there too.
    take: int = 0

    @property
    def images(self) -> tuple[Path, ...]:
        """Every image file this job sends, first frame first: each one shapes the clip (a DVC dependency)."""
        return (self.first_frame,) if self.next_frame is None else (self.first_frame, self.next_frame)

    @property
    def extras(self) -> dict[str, Any]:
        """The scene's optional inputs (negative_prompt, seed) that this model takes."""
        values = {"negative_prompt": self.scene.negative_prompt, "seed": self.scene.seed}
        return {k: v for k in SCENE_EXTRAS if (v := values[k]) is not None and k in self.model.extras}

    @property
    def prompt(self) -> str:
        return self.scene.combined_prompt

    @property
    def makes_audio(self) -> bool:
        return self.model.makes_audio(self.generate_audio)

    @property
    def label(self) -> str:
        return f"{self.concept} scene {self.scene.number}"

    @property
    def debug_dir(self) -> Path:
        return self.output.parent / "debug" / f"scene_{self.scene.number}"

    @property
    def debug_file(self) -> Path:
        return self.debug_dir / f"{self.model.debug_prefix}_p{self.scene.number}_prompt.txt"

    @property
    def error_file(self) -> Path:
        return self.debug_dir / "error.txt"

    def api_input(self, image: str, last_frame: str | None = None) -> dict[str, Any]:
        """The exact input sent to the model, with `image` as the first frame's URI and `last_frame` (or the one
        `image` carries, see `ImageURIs`) as the end frame's, when the job has one."""
        if self.next_frame is not None:
            last_frame = last_frame or getattr(image, "last_frame", None)
            if not last_frame:
                raise ValueError(f"{self.label}: no URI for the end frame {self.next_frame}")
        return self.model.build_input(
            prompt=self.prompt,
            image=str(image),
            duration=self.duration,
            aspect=self.aspect,
            resolution=self.resolution,
            generate_audio=self.generate_audio,
            last_frame=str(last_frame) if self.next_frame is not None else None,
            extras=self.extras,
        )


def output_name(concept: str, scene_number: int, model: ModelSpec) -> str:
    return f"{concept}_p{scene_number}_{model.suffix}.mp4"


def concept_output_dir(settings: Settings, concept: str, batch: str | None = None) -> Path:
    return settings.outputs_dir / (batch or settings.batch) / concept


def infer_batch(prompts_path: Path, concept: str) -> str | None:
    """Step 7 writes `…/{batch}/{concept}/{concept}_scene_prompts.json`: read the batch off that layout.

    The folder name becomes an output folder, so it is checked like any other batch name.
    """
    parent = prompts_path.resolve().parent
    if parent.name == concept and parent.parent.name:
        return check_batch_name(parent.parent.name, f"{prompts_path}: batch folder", "; pass --batch NAME")
    return None


def resolve_batch(concept: Concept, settings: Settings, batch: str | None = None) -> str:
    """The batch folder: `batch` (the --batch option), else read off the step-7 layout, else params'."""
    if batch is not None:
        return check_batch_name(batch, "--batch")
    return infer_batch(concept.prompts_path, concept.name) or check_batch_name(
        settings.batch, f"{settings.source}: output.batch")


def portable_path(path: Path, prompts_path: Path) -> str:
    """Relative to the working directory (the repo) when inside it, else to the prompts file."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(os.path.relpath(resolved, prompts_path.resolve().parent)).as_posix()


def next_scene(concept: Concept, scene_number: int) -> Scene | None:
    """The scene after `scene_number` in the file's scene order (continuity pairs each scene with it)."""
    ordered = sorted(concept.scenes, key=lambda s: s.number)
    later = [s for s in ordered if s.number > scene_number]
    return later[0] if later else None


def has_end_frame(concept: Concept, scene: Scene, model: ModelSpec, settings: Settings) -> bool:
    """Whether continuity gives this scene an end frame: it is on, the model takes one, a next scene exists."""
    return (settings.continuity == NEXT_FIRST_FRAME and model.takes_last_frame
            and next_scene(concept, scene.number) is not None)


def shaping_input(concept: Concept, scene: Scene, settings: Settings) -> tuple[ModelSpec, dict[str, Any]]:
    """The model and the exact input a scene's clip is made from, with a placeholder for each image.

    What the DVC pipeline records per scene (the image bytes are file dependencies of their own); it reads no
    file, so one unreadable frame never stops the other scenes from being resolved.
    """
    model = get_model(settings.video_model)
    duration, _ = model.snap_duration(scene.duration_seconds or settings.duration_seconds)
    aspect, _ = model.api_aspect(settings.aspect_ratio)
    resolution, _ = model.api_resolution(settings.resolution)
    values = {"negative_prompt": scene.negative_prompt, "seed": scene.seed}
    extras = {k: v for k in SCENE_EXTRAS if (v := values[k]) is not None and k in model.extras}
    end = NEXT_FRAME_PLACEHOLDER if has_end_frame(concept, scene, model, settings) else None
    return model, model.build_input(prompt=scene.combined_prompt, image=IMAGE_PLACEHOLDER, duration=duration,
                                    aspect=aspect, resolution=resolution, generate_audio=settings.generate_audio,
                                    last_frame=end, extras=extras)


def build_job(
    concept: Concept,
    scene_number: int,
    first_frame: Path,
    settings: Settings,
    *,
    output: Path | None = None,
    batch: str | None = None,
    duration: float | None = None,
    next_frame: Path | None = None,
) -> Job:
    """Resolve one scene. `duration` (a command-line override) beats the scene's own, which beats params.

    `next_frame`: the next scene's first frame, used as this clip's end frame when `video_settings.continuity`
    is `next_first_frame` and the model takes one (else ignored, with a warning when it matters).
    """
    scene = concept.scene(scene_number)
    model = get_model(settings.video_model)
    first_frame = Path(first_frame)
    check_image(first_frame, scene_number)
    requested = duration or scene.duration_seconds or settings.duration_seconds
    snapped, duration_warning = model.snap_duration(requested)
    aspect, aspect_warning = model.api_aspect(settings.aspect_ratio)
    resolution, resolution_warning = model.api_resolution(settings.resolution)
    size = model.frame_size(aspect, resolution)
    batch = resolve_batch(concept, settings, batch)
    if output is None:
        output = concept_output_dir(settings, concept.name, batch) / output_name(concept.name, scene.number, model)
    label = f"{concept.name} scene {scene.number}"
    warnings = [w for w in (duration_warning, aspect_warning, resolution_warning, sunset_warning(model)) if w]
    end_frame, end_warning = _end_frame(concept, scene, model, settings, next_frame)
    warnings += [f"{label}: {w}" for w in (end_warning,) if w]
    warnings += [
        f"{label}: {model.label} has no '{key}' input; the scene's {key} is not sent"
        for key, value in (("negative_prompt", scene.negative_prompt), ("seed", scene.seed))
        if value is not None and key not in model.extras
    ]
    job = Job(
        concept=concept.name,
        batch=batch,
        scene=scene,
        model=model,
        prompts_path=concept.prompts_path,
        first_frame=first_frame,
        first_frame_display=portable_path(first_frame, concept.prompts_path),
        frame_sha256=file_sha256(first_frame),
        duration=snapped,
        requested_aspect=settings.aspect_ratio,
        aspect=aspect,
        resolution=resolution,
        generate_audio=settings.generate_audio,
        width=size[0] if size else None,
        height=size[1] if size else None,
        output=Path(output),
        warnings=tuple(warnings),
        fingerprint="",
        next_frame=end_frame,
        next_frame_sha256=file_sha256(end_frame) if end_frame is not None else None,
        preview_size=model.preview_size(aspect, resolution),
    )
    job = _with_fingerprint(job)
    # Image fields show as the files a person knows, not as URLs that do not exist yet.
    shown = portable_path(end_frame, concept.prompts_path) if end_frame is not None else None
    rules = model.rules(job.api_input(job.first_frame_display, shown))
    if rules:  # cross-field rules: refused before anything is spent
        raise InputError(rules[0].line(model.id, label))
    return job


def _end_frame(
    concept: Concept, scene: Scene, model: ModelSpec, settings: Settings, next_frame: Path | None
) -> tuple[Path | None, str | None]:
    """The end frame this job sends (continuity), and a warning when continuity is on but it cannot."""
    if settings.continuity != NEXT_FIRST_FRAME or next_frame is None:
        return None, None
    if not model.takes_last_frame:
        return None, f"{model.label} takes no end frame, so this clip ends freely (continuity)"
    following = next_scene(concept, scene.number)
    number = following.number if following else scene.number + 1
    next_frame = Path(next_frame)
    if not next_frame.exists():
        return None, f"scene {number}'s first frame ({next_frame}) is missing, so this clip ends freely (continuity)"
    check_image(next_frame, number)
    return next_frame, None


def _with_fingerprint(job: Job) -> Job:
    shaping = {
        "model": job.model.id,
        "input": job.api_input(IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER),
        "first_frame_sha256": job.frame_sha256,
    }
    if job.next_frame_sha256 is not None:  # only then: every other job keeps the fingerprint it always had
        shaping["next_frame_sha256"] = job.next_frame_sha256
    blob = json.dumps(shaping, sort_keys=True, ensure_ascii=False).encode()
    return replace(job, fingerprint=hashlib.sha256(blob).hexdigest())


def build_concept_jobs(
    concept: Concept,
    frames_dir: Path,
    settings: Settings,
    *,
    scene_numbers: list[int] | None = None,
    out_dir: Path | None = None,
    batch: str | None = None,
    duration: float | None = None,
) -> tuple[list[Job], dict[int, str]]:
    """Jobs for every (or the chosen) scene of a concept, and {scene number: problem} for the scenes skipped.

    Every scene's inputs are checked here, before any job runs: one whose first frame is missing or unusable
    is skipped (the reference's rule: one scene's trouble never stops the others). A problem of the whole
    request (a scene not in the file, an unsafe batch) is an `InputError`. With `video_settings.continuity:
    next_first_frame`, each scene's end frame is the next scene's first frame (in the file's scene order,
    whichever scenes are chosen); the last scene has none.
    """
    numbers = scene_numbers or [s.number for s in concept.scenes]
    for number in numbers:
        concept.scene(number)
    batch = resolve_batch(concept, settings, batch)
    model = get_model(settings.video_model)
    jobs: list[Job] = []
    problems: dict[int, str] = {}
    for number in numbers:
        frame = first_frame_path(frames_dir, concept.name, number)
        problem = scene_input_problem(concept, number, frame)
        if problem is not None:
            problems[number] = problem
            continue
        output = out_dir / output_name(concept.name, number, model) if out_dir else None
        following = next_scene(concept, number)
        end = first_frame_path(frames_dir, concept.name, following.number) if following else None
        jobs.append(build_job(concept, number, frame, settings, output=output, batch=batch, duration=duration,
                              next_frame=end))
    return jobs, problems


def validate_job(job: Job, schema: Schema | None = None) -> None:
    """Refuse (`InputError`: one line naming model, scene, field, value and what is allowed) a job whose input
    the model would refuse. `schema`: the model's live schema (the replicate backend fetches it); default the
    shipped, dated snapshot -- what `s9 plan` and the offline backend check against."""
    schema = schema or snapshot_schema(job.model)
    inp = job.api_input(job.first_frame.resolve().as_uri(),
                        job.next_frame.resolve().as_uri() if job.next_frame is not None else None)
    problems = schema.problems(inp) + job.model.rules(inp)
    if problems:
        where = "by its live schema" if schema.origin in ("live", "cached") else "by its schema snapshot"
        raise InputError(problems[0].line(job.model.id, job.label, f" {where} of {schema.date}"))
