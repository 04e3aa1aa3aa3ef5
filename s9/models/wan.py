"""Wan 2.5 image to video: `image`, 5 or 10 s, 480p/720p/1080p, `negative_prompt` and `seed`; no end frame.

The clip's shape follows the image. Its own audio track is optional and not asked for here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ModelSpec


@dataclass(frozen=True)
class WanModel(ModelSpec):
    extras: ClassVar[frozenset[str]] = frozenset({"negative_prompt", "seed"})
    resolutions: ClassVar[tuple[str, ...]] = ("720p", "1080p", "480p")

    def makes_audio(self, generate_audio: bool) -> bool:
        return False

    def frame_size(self, aspect: str, resolution: str) -> None:
        return None  # the image's shape

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool,
        last_frame: str | None = None, extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        inp = {"image": image, "prompt": prompt, "duration": duration, "resolution": resolution}
        return self._with_extras(inp, None, extras)


# The 1080p list price, so a budget is never undercounted; 720p is about $0.10/s.
WAN_25_I2V = WanModel("wan-video/wan-2.5-i2v", "Wan 2.5 I2V", "wan_2.5_i2v", "wan", (5, 10), 0.15)
