"""What every model spec answers, and the facts shared between families (sizes, snapping, schema snapshots)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

#: Aspect ratios a user may ask for; each model maps them onto what its API accepts.
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
#: Resolutions a user may ask for; each model maps them onto its own values (e.g. Hailuo's 768p).
RESOLUTIONS = ("720p", "1080p")
#: Optional per-scene inputs of the step-7 file, passed to the models that take them.
SCENE_EXTRAS = ("negative_prompt", "seed")

#: Output frame size per (aspect, resolution).
SIZES = {
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
}

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "(missing)"})()  # a required field not sent

#: When the list prices below were last checked (public prices vary by source; params.yaml's win).
PRICE_DATE = "2026-11-20"

SNAPSHOT_DIR = Path(__file__).resolve().parent.parent / "assets" / "schemas"


@dataclass(frozen=True)
class Problem:
    """One input the model would refuse: the field, the value sent, and what is allowed instead."""

    field: str
    value: Any
    allowed: str

    def line(self, model: str, where: str, source: str = "") -> str:
        """One line naming model, scene, field, value and what is allowed (`source`: " by its live schema...")."""
        if self.value is MISSING:
            return f"{model}, {where}: {self.field} is required{source} but not sent"
        shown = repr(self.value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return f"{model}, {where}: {self.field} = {shown} is not accepted{source} (allowed: {self.allowed})"


@dataclass(frozen=True)
class ModelSpec:
    """Facts shared by every model; each family adds its input builder, aspect and resolution mapping."""

    id: str
    label: str  # human name used in messages and the debug header, e.g. "Veo 3.1 Fast"
    suffix: str  # output file suffix: {concept}_p{N}_{suffix}.mp4
    debug_prefix: str  # debug file: debug/scene_{N}/{prefix}_p{N}_prompt.txt
    durations: tuple[int, ...]
    price_per_second: float  # USD list price per output second (PRICE_DATE), a default params.yaml may override
    last_frame_field: str | None = None  # the input that takes an end frame (continuity), if any
    sunset: str | None = None  # ISO date the provider announced the model's API shuts down
    sunset_note: str | None = None  # what that means for a user, one sentence
    image_field: ClassVar[str] = "image"
    extras: ClassVar[frozenset[str]] = frozenset()  # which of SCENE_EXTRAS the model takes
    resolutions: ClassVar[tuple[str, ...]] = RESOLUTIONS  # the model's own resolution values
    aspects: ClassVar[tuple[str, ...]] = ASPECT_RATIOS  # user aspect ratios it can honour

    # -- facts every model answers -------------------------------------------------------------
    def makes_audio(self, generate_audio: bool) -> bool:
        raise NotImplementedError

    def api_aspect(self, aspect_ratio: str) -> tuple[str, str | None]:
        """The API's aspect value for a user aspect ratio, and a warning when it had to be changed."""
        return aspect_ratio, None

    def api_resolution(self, resolution: str) -> tuple[str, str | None]:
        """The model's own resolution for a user resolution, and a warning when it had to be changed."""
        if resolution in self.resolutions:
            return resolution, None
        return self.resolutions[0], None

    def build_input(
        self,
        *,
        prompt: str,
        image: str,
        duration: int,
        aspect: str,
        resolution: str,
        generate_audio: bool,
        last_frame: str | None = None,
        extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The exact prediction input, in the order the debug file shows it."""
        raise NotImplementedError

    def rules(self, inp: dict[str, Any]) -> list[Problem]:
        """Cross-field rules the schema cannot say (checked before anything is spent)."""
        return []

    def frame_size(self, aspect: str, resolution: str) -> tuple[int, int] | None:
        """Width and height of the clip this model returns; None when it follows the first frame's shape."""
        return SIZES[resolution][aspect]

    def preview_size(self, aspect: str, resolution: str) -> tuple[int, int]:
        """The size the offline renderer makes for this model (its nominal output size)."""
        return self.frame_size(aspect, resolution) or SIZES["720p"].get(aspect, SIZES["720p"]["16:9"])

    def snap_duration(self, requested: float) -> tuple[int, str | None]:
        """The nearest valid duration (ties go to the longer one) and a warning when it differs."""
        best = min(self.durations, key=lambda d: (abs(d - requested), -d))
        if best == requested:
            return best, None
        shown = int(requested) if float(requested).is_integer() else requested
        return best, f"Duration adjusted from {shown}s to {best}s ({self.label} requirement)"

    # -- derived -------------------------------------------------------------------------------
    @property
    def takes_last_frame(self) -> bool:
        return self.last_frame_field is not None

    @property
    def snapshot_path(self) -> Path:
        """The shipped, dated snapshot of this model's published input schema."""
        return SNAPSHOT_DIR / f"{self.id.replace('/', '__')}.json"

    def _with_extras(self, inp: dict[str, Any], last_frame: str | None, extras: dict[str, Any] | None) -> dict:
        # Appended only when present, so a job without them sends (and fingerprints) exactly what it did before.
        if last_frame is not None and self.last_frame_field:
            inp[self.last_frame_field] = last_frame
        for key in SCENE_EXTRAS:
            if extras and extras.get(key) is not None and key in self.extras:
                inp[key] = extras[key]
        return inp
