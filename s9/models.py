"""One small spec per video model: everything that differs between models lives here.

Adding a model is one more instance at the bottom (or one small subclass if its input schema is new).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import InputError

#: Aspect ratios a user may ask for; each model maps them onto what its API accepts.
ASPECT_RATIOS = ("16:9", "9:16", "1:1")

#: Output frame size per (API aspect value, resolution).
_SIZES = {
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
}
RESOLUTIONS = tuple(_SIZES)


@dataclass(frozen=True)
class ModelSpec:
    """Facts shared by every model; subclasses add the input builder and the aspect mapping."""

    id: str
    label: str  # human name used in messages and the debug header, e.g. "Veo 3.1 Fast"
    suffix: str  # output file suffix: {concept}_p{N}_{suffix}.mp4
    debug_prefix: str  # debug file: debug/scene_{N}/{prefix}_p{N}_prompt.txt
    durations: tuple[int, ...]
    price_per_second: float  # USD, a default that params.yaml may override
    image_field: ClassVar[str] = "image"
    resolutions: ClassVar[tuple[str, ...]] = RESOLUTIONS

    # -- facts every model answers -------------------------------------------------------------
    def makes_audio(self, generate_audio: bool) -> bool:
        raise NotImplementedError

    def api_aspect(self, aspect_ratio: str) -> tuple[str, str | None]:
        """The API's aspect value for a user aspect ratio, and a warning when it had to be changed."""
        raise NotImplementedError

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool
    ) -> dict[str, Any]:
        """The exact prediction input, in the order the debug file shows it."""
        raise NotImplementedError

    def frame_size(self, aspect: str, resolution: str) -> tuple[int, int]:
        """Width and height of the clip this model returns for an API aspect value."""
        return _SIZES[resolution][aspect]

    def snap_duration(self, requested: float) -> tuple[int, str | None]:
        """The nearest valid duration (ties go to the longer one) and a warning when it differs."""
        best = min(self.durations, key=lambda d: (abs(d - requested), -d))
        if best == requested:
            return best, None
        shown = int(requested) if float(requested).is_integer() else requested
        return best, f"Duration adjusted from {shown}s to {best}s ({self.label} requirement)"


@dataclass(frozen=True)
class SoraModel(ModelSpec):
    """OpenAI Sora: `seconds`, landscape/portrait, first frame as `input_reference`, silent clips."""

    image_field: ClassVar[str] = "input_reference"
    resolutions: ClassVar[tuple[str, ...]] = ("720p",)
    _aspects: ClassVar[dict[str, str]] = {"16:9": "landscape", "9:16": "portrait"}

    def makes_audio(self, generate_audio: bool) -> bool:
        return False

    def api_aspect(self, aspect_ratio: str) -> tuple[str, str | None]:
        if aspect_ratio in self._aspects:
            return self._aspects[aspect_ratio], None
        return "landscape", f"Aspect ratio {aspect_ratio} is not supported by {self.label}; using landscape"

    def frame_size(self, aspect: str, resolution: str) -> tuple[int, int]:
        return _SIZES["720p"]["9:16" if aspect == "portrait" else "16:9"]

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool
    ) -> dict[str, Any]:
        return {"prompt": prompt, "seconds": duration, "aspect_ratio": aspect, "input_reference": image}


@dataclass(frozen=True)
class VeoModel(ModelSpec):
    """Google Veo: `duration`, 16:9/9:16/1:1 as given, first frame as `image`, audio on request."""

    def makes_audio(self, generate_audio: bool) -> bool:
        return generate_audio

    def api_aspect(self, aspect_ratio: str) -> tuple[str, str | None]:
        return aspect_ratio, None

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool
    ) -> dict[str, Any]:
        return {
            "image": image,
            "prompt": prompt,
            "duration": duration,
            "resolution": resolution,
            "aspect_ratio": aspect,
            "generate_audio": generate_audio,
        }


# Prices are rough public list prices per output second; params.yaml `budget.price_per_second_usd` wins.
MODELS: dict[str, ModelSpec] = {
    m.id: m
    for m in (
        SoraModel("openai/sora-2", "Sora 2", "sora_2", "sora2", (4, 8, 12), 0.10),
        VeoModel("google/veo-3-fast", "Veo 3 Fast", "veo_3_fast", "veo3", (4, 6, 8), 0.15),
        VeoModel("google/veo-3.1-fast", "Veo 3.1 Fast", "veo_3.1_fast", "veo3", (4, 6, 8), 0.15),
    )
}
DEFAULT_MODEL = "google/veo-3.1-fast"


def get_model(model_id: str, source: str = "video_model") -> ModelSpec:
    """The spec for a model id, or an input error that lists the known ones."""
    try:
        return MODELS[model_id]
    except (KeyError, TypeError):
        known = ", ".join(MODELS)
        raise InputError(f"{source}: unknown model {model_id!r} (known models: {known})") from None
