"""A scene + its first frame + settings + model -> one fully resolved generation request (`Job`).

The fingerprint of everything that shapes a clip is computed here, once: the prediction journal, the
offline renderer's seed and the debug file all read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import InputError
from .models import ModelSpec, get_model
from .params import Settings
from .scenes import Concept, Scene, check_batch_name

# Stands in for the upload URL inside the fingerprint: upload URLs change on every upload.
IMAGE_PLACEHOLDER = "<first-frame>"
FIRST_FRAME_PATTERN = "{concept}_p{n}_first_frame.jpg"
# A first frame is a video still: 40 megapixels is far beyond any model's input, and decoding more would take
# about a gigabyte per worker. Checked from the image header, before any pixel is decoded.
MAX_FRAME_PIXELS = 40_000_000


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
    width: int
    height: int
    output: Path
    warnings: tuple[str, ...]
    fingerprint: str

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

    def api_input(self, image: str) -> dict[str, Any]:
        """The exact input sent to the model, with `image` as the first frame's URI."""
        return self.model.build_input(
            prompt=self.prompt,
            image=image,
            duration=self.duration,
            aspect=self.aspect,
            resolution=self.resolution,
            generate_audio=self.generate_audio,
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


def first_frame_path(frames_dir: Path, concept: str, scene_number: int) -> Path:
    return frames_dir / FIRST_FRAME_PATTERN.format(concept=concept, n=scene_number)


def portable_path(path: Path, prompts_path: Path) -> str:
    """Relative to the working directory (the repo) when inside it, else to the prompts file."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(os.path.relpath(resolved, prompts_path.resolve().parent)).as_posix()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_image(path: Path, scene_number: int) -> None:
    """A first frame must exist and decode as an image before anything is sent or written."""
    what = f"first frame for scene {scene_number}"
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a regular file")
    too_large = f"{path}: {what} is too large"
    try:
        # Pillow warns (to the terminal) on opening an image over ~89 megapixels and refuses one over twice
        # that; ours is the lower limit, refused below with one line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_FRAME_PIXELS:
                    raise InputError(f"{too_large} ({width}x{height}, over {MAX_FRAME_PIXELS // 10**6} megapixels)")
                image.verify()  # the header and, for PNG, the checksums
            with Image.open(path) as image:
                image.load()  # decoding is the only way to catch a truncated JPEG before it is uploaded
    except Image.DecompressionBombError:
        raise InputError(f"{too_large} (over {MAX_FRAME_PIXELS // 10**6} megapixels)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: {what} is not a readable image ({exc})") from None


def scene_input_problem(concept: Concept, scene_number: int, first_frame: Path) -> str | None:
    """Why this scene cannot be generated from its inputs, as one line, or None when it can.

    The per-scene check every batch runs before anything is uploaded or written, so that a scene whose entry
    or first frame is missing, not a regular file, too large or unreadable is skipped and reported while the
    others run. Reads the frame; sends and writes nothing.
    """
    try:
        concept.scene(scene_number)
        check_image(Path(first_frame), scene_number)
    except InputError as exc:
        return str(exc)
    return None


def shaping_input(scene: Scene, settings: Settings, duration: float | None = None) -> tuple[ModelSpec, dict[str, Any]]:
    """The model and the exact input a scene's clip is made from, with `IMAGE_PLACEHOLDER` for each image.

    What the DVC pipeline records per scene (the image bytes are file dependencies of their own); it reads no
    file, so one unreadable frame never stops the other scenes from being resolved.
    """
    job = _resolve(scene, settings, duration)
    return job.model, job.api_input(IMAGE_PLACEHOLDER)


def _resolve(scene: Scene, settings: Settings, duration: float | None) -> _Resolved:
    model = get_model(settings.video_model)
    requested = duration or scene.duration_seconds or settings.duration_seconds
    snapped, duration_warning = model.snap_duration(requested)
    aspect, aspect_warning = model.api_aspect(settings.aspect_ratio)
    resolution = settings.resolution if settings.resolution in model.resolutions else model.resolutions[0]
    return _Resolved(scene, model, snapped, aspect, resolution, settings.generate_audio,
                     tuple(w for w in (duration_warning, aspect_warning) if w))


@dataclass(frozen=True)
class _Resolved:
    scene: Scene
    model: ModelSpec
    duration: int
    aspect: str
    resolution: str
    generate_audio: bool
    warnings: tuple[str, ...]

    def api_input(self, image: str) -> dict[str, Any]:
        return self.model.build_input(prompt=self.scene.combined_prompt, image=image, duration=self.duration,
                                      aspect=self.aspect, resolution=self.resolution,
                                      generate_audio=self.generate_audio)


def build_job(
    concept: Concept,
    scene_number: int,
    first_frame: Path,
    settings: Settings,
    *,
    output: Path | None = None,
    batch: str | None = None,
    duration: float | None = None,
) -> Job:
    """Resolve one scene. `duration` (a command-line override) beats the scene's own, which beats params."""
    scene = concept.scene(scene_number)
    first_frame = Path(first_frame)
    check_image(first_frame, scene_number)
    resolved = _resolve(scene, settings, duration)
    model = resolved.model
    width, height = model.frame_size(resolved.aspect, resolved.resolution)
    batch = resolve_batch(concept, settings, batch)
    if output is None:
        output = concept_output_dir(settings, concept.name, batch) / output_name(concept.name, scene.number, model)
    frame_sha = file_sha256(first_frame)
    job = Job(
        concept=concept.name,
        batch=batch,
        scene=scene,
        model=model,
        prompts_path=concept.prompts_path,
        first_frame=first_frame,
        first_frame_display=portable_path(first_frame, concept.prompts_path),
        frame_sha256=frame_sha,
        duration=resolved.duration,
        requested_aspect=settings.aspect_ratio,
        aspect=resolved.aspect,
        resolution=resolved.resolution,
        generate_audio=settings.generate_audio,
        width=width,
        height=height,
        output=Path(output),
        warnings=resolved.warnings,
        fingerprint="",
    )
    return _with_fingerprint(job)


def _with_fingerprint(job: Job) -> Job:
    shaping = {
        "model": job.model.id,
        "input": job.api_input(IMAGE_PLACEHOLDER),
        "first_frame_sha256": job.frame_sha256,
    }
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
    request (a scene not in the file, an unsafe batch) is an `InputError`.
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
        jobs.append(build_job(concept, number, frame, settings, output=output, batch=batch, duration=duration))
    return jobs, problems
