"""MiniMax Hailuo 02: `first_frame_image` and `last_frame_image`, 6 or 10 s, 512p/768p/1080p, 10 s only at 768p.

A 720p request becomes 768p, the nearest the model offers; the clip's shape follows the first frame. No audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ModelSpec, Problem

_RESOLUTIONS = {"720p": "768p", "1080p": "1080p"}


@dataclass(frozen=True)
class HailuoModel(ModelSpec):
    image_field: ClassVar[str] = "first_frame_image"
    resolutions: ClassVar[tuple[str, ...]] = ("768p", "1080p", "512p")

    def makes_audio(self, generate_audio: bool) -> bool:
        return False

    def api_resolution(self, resolution: str) -> tuple[str, str | None]:
        own = _RESOLUTIONS.get(resolution, "768p")
        if own == resolution:
            return own, None
        return own, f"Resolution {resolution} is not offered by {self.label}; using {own}"

    def frame_size(self, aspect: str, resolution: str) -> None:
        return None  # the first frame's shape

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool,
        last_frame: str | None = None, extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        inp = {"prompt": prompt, "first_frame_image": image, "duration": duration, "resolution": resolution}
        return self._with_extras(inp, last_frame, extras)

    def rules(self, inp: dict[str, Any]) -> list[Problem]:
        if inp.get("duration") == 10 and inp.get("resolution") != "768p":
            return [Problem("duration", 10, "6 at this resolution; 10 s only at 768p (video_settings.resolution: "
                                            "720p), so shorten the scene or lower the resolution")]
        return []


# The 1080p list price (about $0.48 for 6 s), so a budget is never undercounted; 768p is about $0.045/s.
HAILUO_02 = HailuoModel("minimax/hailuo-02", "Hailuo 02", "hailuo_02", "hailuo", (6, 10), 0.08,
                        last_frame_field="last_frame_image")
