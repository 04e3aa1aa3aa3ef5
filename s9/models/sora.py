"""OpenAI Sora 2: `seconds`, landscape/portrait, first frame as `input_reference`, silent clips.

OpenAI announced that the Sora 2 video API shuts down on 2026-09-24, and Replicate's model forwards to it: the
model stays here because the reference names it, and says so wherever it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import SIZES, ModelSpec


@dataclass(frozen=True)
class SoraModel(ModelSpec):
    image_field: ClassVar[str] = "input_reference"
    resolutions: ClassVar[tuple[str, ...]] = ("720p",)
    aspects: ClassVar[tuple[str, ...]] = ("16:9", "9:16")
    _aspects: ClassVar[dict[str, str]] = {"16:9": "landscape", "9:16": "portrait"}

    def makes_audio(self, generate_audio: bool) -> bool:
        return False

    def api_aspect(self, aspect_ratio: str) -> tuple[str, str | None]:
        if aspect_ratio in self._aspects:
            return self._aspects[aspect_ratio], None
        return "landscape", f"Aspect ratio {aspect_ratio} is not supported by {self.label}; using landscape"

    def frame_size(self, aspect: str, resolution: str) -> tuple[int, int]:
        return SIZES["720p"]["9:16" if aspect == "portrait" else "16:9"]

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool,
        last_frame: str | None = None, extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {"prompt": prompt, "seconds": duration, "aspect_ratio": aspect, "input_reference": image}


SORA_2 = SoraModel(
    "openai/sora-2", "Sora 2", "sora_2", "sora2", (4, 8, 12), 0.10,
    sunset="2026-09-24",
    sunset_note="OpenAI's Sora 2 video API, which Replicate's model forwards to,",
)
