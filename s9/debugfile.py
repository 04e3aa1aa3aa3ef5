"""The per-scene debug file: exactly what was (or will be) sent to the model, in the reference layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .job import Job

RULE = "=" * 80
TAKE_LABEL = "Take:"  # the line a fresh take adds (s9.takes reads it back)
THIN = "-" * 80


def render(job: Job, image_uri: str, api_input: dict[str, Any], backend: str) -> str:
    scene = job.scene
    lines = [
        RULE,
        f"{job.model.label.upper()} PROMPT (EXACT SENT TO API)",
        RULE,
        "",
        f"Model: {job.model.id}",
        f"Backend: {backend}",
        *([f"{TAKE_LABEL} {job.take} (a fresh take of unchanged inputs, --new-take)"] if job.take else []),
        f"Scene Number: {scene.number}",
        f"First Frame Image: {job.first_frame_display}",
        f"Duration: {job.duration} seconds",
        f"Aspect Ratio: {job.aspect}",
        f"Resolution: {job.resolution}",
        f"Generate Audio: {job.makes_audio}",
    ]
    lines += [f"Warning: {w}" for w in job.warnings]
    lines += [
        "",
        "COMBINED PROMPT:",
        THIN,
        job.prompt,
        THIN,
        "",
        "BREAKDOWN:",
        f"Video Prompt: {scene.video_prompt}",
        f"Audio Background: {scene.audio_background}",
        f"Audio Dialogue: {scene.audio_dialogue}",
        "",
        f"First Frame Image URI: {image_uri}",
        "",
        RULE,
        "FULL API INPUT DATA:",
        RULE,
    ]
    lines += [f"{key}: {value}" for key, value in api_input.items()]
    # The key: value block is for people; the JSON is byte-exact what the client serialises.
    lines += ["", "API INPUT JSON:", json.dumps(api_input, indent=2, ensure_ascii=False), ""]
    return "\n".join(lines)


def write(job: Job, image_uri: str, api_input: dict[str, Any], backend: str) -> Path:
    write_text_atomic(job.debug_file, render(job, image_uri, api_input, backend))
    return job.debug_file


def write_error(job: Job, message: str) -> Path:
    """Keep a failed scene's reason next to its prompt, where the reference tells users to look."""
    write_text_atomic(job.error_file, f"✗ Scene {job.scene.number} failed: {message}\n")
    return job.error_file


def clear_error(job: Job) -> None:
    job.error_file.unlink(missing_ok=True)


RECEIPT = "receipt.json"


def write_receipt(job: Job, receipt: dict[str, Any]) -> Path:
    """What the clip took (model, seconds, USD paid, model run time), beside what was sent for it."""
    path = job.debug_dir / RECEIPT
    write_text_atomic(path, json.dumps(receipt, indent=2, sort_keys=True) + "\n")
    return path


def clear_others(job: Job) -> None:
    """Once the clip is in place, the scene's debug folder holds only what was sent for it: a file another
    model's run left there (its own prefix) would otherwise travel with this clip through DVC."""
    keep = {job.debug_file.name, job.error_file.name, RECEIPT}
    for path in job.debug_dir.iterdir():
        if path.is_file() and path.name not in keep and not path.name.startswith("."):
            path.unlink(missing_ok=True)
