"""Kling v2.1 (image to video): `start_image` required, `end_image` only in `mode: pro`, 5 or 10 s.

The resolution is the mode (standard = 720p, pro = 1080p); the clip's shape follows the start image, so
there is no aspect input. No audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ModelSpec, Problem

_MODES = {"720p": "standard", "1080p": "pro"}


@dataclass(frozen=True)
class KlingModel(ModelSpec):
    image_field: ClassVar[str] = "start_image"
    extras: ClassVar[frozenset[str]] = frozenset({"negative_prompt"})

    def makes_audio(self, generate_audio: bool) -> bool:
        return False

    def frame_size(self, aspect: str, resolution: str) -> None:
        return None  # the start image's shape

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool,
        last_frame: str | None = None, extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        inp = {"prompt": prompt, "start_image": image, "mode": _MODES[resolution], "duration": duration}
        return self._with_extras(inp, last_frame, extras)

    def rules(self, inp: dict[str, Any]) -> list[Problem]:
        if inp.get("end_image") and inp.get("mode") != "pro":
            return [Problem("end_image", inp["end_image"],
                            'only with mode "pro": set video_settings.resolution: 1080p, or continuity: none')]
        return []


# The pro (1080p) list price, so a budget is never undercounted; standard (720p) is about $0.05/s.
KLING_V21 = KlingModel("kwaivgi/kling-v2.1", "Kling v2.1", "kling_v2.1", "kling", (5, 10), 0.09,
                       last_frame_field="end_image")
