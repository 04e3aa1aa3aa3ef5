"""Google Veo: `duration`, the aspect ratio as given, first frame as `image`, audio on request.

Veo 3.1 and 3.1 Fast also take an end frame (`last_frame`: the clip transitions into it); all take
`negative_prompt` and `seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ModelSpec


@dataclass(frozen=True)
class VeoModel(ModelSpec):
    extras: ClassVar[frozenset[str]] = frozenset({"negative_prompt", "seed"})

    def makes_audio(self, generate_audio: bool) -> bool:
        return generate_audio

    def build_input(
        self, *, prompt: str, image: str, duration: int, aspect: str, resolution: str, generate_audio: bool,
        last_frame: str | None = None, extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        inp = {
            "image": image,
            "prompt": prompt,
            "duration": duration,
            "resolution": resolution,
            "aspect_ratio": aspect,
            "generate_audio": generate_audio,
        }
        return self._with_extras(inp, last_frame, extras)


VEO_3_FAST = VeoModel("google/veo-3-fast", "Veo 3 Fast", "veo_3_fast", "veo3", (4, 6, 8), 0.15)
VEO_31_FAST = VeoModel("google/veo-3.1-fast", "Veo 3.1 Fast", "veo_3.1_fast", "veo3", (4, 6, 8), 0.15,
                       last_frame_field="last_frame")
VEO_31 = VeoModel("google/veo-3.1", "Veo 3.1", "veo_3.1", "veo3", (4, 6, 8), 0.40, last_frame_field="last_frame")
