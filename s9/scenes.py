"""Reading and validating a step-7 scene prompts file into `Concept` and `Scene` values."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, describe
from .inputfile import read_input_text

PROMPTS_SUFFIX = "_scene_prompts.json"
# Concept and batch names become folder and file names: keep them to one safe path component. Matched with
# fullmatch(): `$` would also match before a trailing newline.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class Scene:
    number: int
    index: int  # position in the file's `scenes` list: DVC tracks the entry as params key `scenes.<index>`
    video_prompt: str
    audio_background: str
    audio_dialogue: str
    duration_seconds: float | None
    negative_prompt: str | None = None  # optional: sent to models whose schema has it
    seed: int | None = None  # optional: sent to models whose schema has it

    @property
    def combined_prompt(self) -> str:
        """Video prompt, then background music, then the dialogue line; empty parts are left out."""
        parts = [self.video_prompt.strip()]
        if self.audio_background.strip():
            parts.append(f"Background Music: {self.audio_background.strip()}")
        if self.audio_dialogue.strip():
            parts.append(self.audio_dialogue.strip())
        return "\n\n".join(parts)


@dataclass(frozen=True)
class Concept:
    name: str
    prompts_path: Path
    scenes: tuple[Scene, ...]

    def scene(self, number: int) -> Scene:
        for scene in self.scenes:
            if scene.number == number:
                return scene
        have = ", ".join(str(s.number) for s in self.scenes)
        raise InputError(f"{self.prompts_path}: scene {number} not found (scenes in file: {have})")


def check_name(name: object, source: str, kind: str = "concept", hint: str = "") -> str:
    """`name` if it is one safe path component; the one check for every concept and batch name."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise InputError(
            f"{source}: unsafe {kind} name {describe(name)} (use letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit, no '/' or '..'){hint}"
        )
    return name


def check_concept_name(name: object, source: str) -> str:
    return check_name(name, source, "concept")


def check_batch_name(name: object, source: str, hint: str = "") -> str:
    return check_name(name, source, "batch", hint)


def concept_name_from_path(path: Path) -> str:
    name = path.name
    return name[: -len(PROMPTS_SUFFIX)] if name.endswith(PROMPTS_SUFFIX) else path.stem


def _text(raw: dict, field: str, where: str, *, required: bool) -> str:
    value = raw.get(field)
    if value is None:
        if required:
            raise InputError(f"{where}: field '{field}' is missing (expected a non-empty string)")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError(f"{where}: field '{field}' must be a {'non-empty ' if required else ''}string")
    return value


def parse_duration(value: object, where: str) -> float:
    """A positive, finite number of seconds (used for both scene entries and params)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{where}: 'duration_seconds' must be a number of seconds > 0, got {describe(value)}")
    return float(value)


def _scene(raw: object, index: int, path: Path) -> Scene:
    where = f"{path}: scene #{index + 1}"
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected an object, got {type(raw).__name__}")
    number = raw.get("scene_number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InputError(f"{where}: field 'scene_number' must be a whole number >= 1, got {describe(number)}")
    where = f"{path}: scene {number}"
    duration = raw.get("duration_seconds")
    return Scene(
        number=number,
        index=index,
        video_prompt=_text(raw, "video_prompt", where, required=True),
        audio_background=_text(raw, "audio_background", where, required=False),
        audio_dialogue=_text(raw, "audio_dialogue", where, required=False),
        duration_seconds=None if duration is None else parse_duration(duration, where),
        negative_prompt=_text(raw, "negative_prompt", where, required=False) or None,
        seed=_seed(raw.get("seed"), where),
    )


def _seed(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{where}: field 'seed' must be a whole number >= 0, got {value!r}")
    return value


def load_concept(path: str | Path) -> Concept:
    """Read a step-7 prompts file; every problem is an `InputError` naming the file, scene and field."""
    path = Path(path)
    text = read_input_text(path, "scene prompts file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # a number too long to convert (over 4,300 digits)
        raise InputError(f"{path}: invalid JSON: a value cannot be read ({str(exc).split(';')[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with a 'scenes' list")
    raw_scenes = data.get("scenes")
    if not isinstance(raw_scenes, list) or not raw_scenes:
        raise InputError(f"{path}: field 'scenes' is missing or empty (expected a non-empty list of scenes)")
    scenes = tuple(_scene(raw, i, path) for i, raw in enumerate(raw_scenes))
    seen: set[int] = set()
    for scene in scenes:
        if scene.number in seen:
            raise InputError(f"{path}: scene {scene.number}: 'scene_number' appears more than once")
        seen.add(scene.number)
    if "concept" in data:
        name = check_concept_name(data["concept"], f"{path}: field 'concept'")
    else:
        name = check_concept_name(concept_name_from_path(path), f"{path}: file name")
    return Concept(name=name, prompts_path=path, scenes=scenes)
