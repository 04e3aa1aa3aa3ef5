"""Reading and validating params.yaml into a `Settings` value, with the defaults in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import InputError
from .models import ASPECT_RATIOS, MODELS, RESOLUTIONS, get_model
from .scenes import check_concept_name, parse_duration
from .yamlio import parse_yaml, read_yaml

BACKENDS = ("offline", "replicate")
# Scene continuity: with next_first_frame, scene N ends on scene N+1's first frame (models that take an end frame).
CONTINUITY = ("none", "next_first_frame")
PARAMS_FILE = "params.yaml"

# The video_settings keys that shape a clip: DVC scene stages depend on exactly these.
CLIP_PARAMS = ("video_model", "aspect_ratio", "duration_seconds", "resolution", "generate_audio", "backend")


@dataclass(frozen=True)
class Settings:
    video_model: str = "google/veo-3.1-fast"
    aspect_ratio: str = "16:9"
    duration_seconds: float = 8.0
    resolution: str = "720p"
    generate_audio: bool = True
    backend: str = "offline"
    continuity: str = "none"
    max_workers: int = 3
    prediction_timeout_seconds: float = 1800.0
    outputs_dir: Path = Path("outputs")
    batch: str = "default"
    max_spend_usd: float | None = None
    prices: dict[str, float] = field(default_factory=lambda: {m.id: m.price_per_second for m in MODELS.values()})
    source: str = "defaults"  # where these came from, for messages

    def price_per_second(self, model_id: str) -> float:
        return self.prices.get(model_id, MODELS[model_id].price_per_second)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Command-line options on top of params; each is validated like the file's value."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        merged = replace(self, **given)
        return validate(merged, "command line option")


def _where(source: str, key: str) -> str:
    return f"{source}: {key}"


def validate(s: Settings, source: str) -> Settings:
    """Check every value; an `InputError` names the key and what is valid."""
    get_model(s.video_model, _where(source, "video_settings.video_model"))
    if s.aspect_ratio not in ASPECT_RATIOS:
        # A YAML 1.1 writer may have turned 16:9 into the base-60 number 969: say so, or the message baffles.
        number = isinstance(s.aspect_ratio, int | float) and not isinstance(s.aspect_ratio, bool)
        hint = "; write it as text, e.g. \"16:9\"" if number else ""
        raise InputError(
            f"{_where(source, 'video_settings.aspect_ratio')}: invalid aspect ratio {s.aspect_ratio!r} "
            f"(valid: {', '.join(ASPECT_RATIOS)}{hint})"
        )
    parse_duration(s.duration_seconds, _where(source, "video_settings"))
    if s.resolution not in RESOLUTIONS:
        raise InputError(
            f"{_where(source, 'video_settings.resolution')}: invalid resolution {s.resolution!r} "
            f"(valid: {', '.join(RESOLUTIONS)})"
        )
    if not isinstance(s.generate_audio, bool):
        raise InputError(f"{_where(source, 'video_settings.generate_audio')}: must be true or false")
    if s.backend not in BACKENDS:
        raise InputError(
            f"{_where(source, 'video_settings.backend')}: unknown backend {s.backend!r} "
            f"(valid: {', '.join(BACKENDS)})"
        )
    if s.continuity not in CONTINUITY:
        raise InputError(
            f"{_where(source, 'video_settings.continuity')}: unknown continuity {s.continuity!r} "
            f"(valid: {', '.join(CONTINUITY)})"
        )
    if isinstance(s.max_workers, bool) or not isinstance(s.max_workers, int) or not 1 <= s.max_workers <= 64:
        raise InputError(f"{_where(source, 'video_settings.max_workers')}: must be a whole number from 1 to 64")
    if not _positive(s.prediction_timeout_seconds):
        raise InputError(f"{_where(source, 'video_settings.prediction_timeout_seconds')}: must be a number > 0")
    check_concept_name(s.batch, _where(source, "output.batch"))
    if s.max_spend_usd is not None and not (_positive(s.max_spend_usd) or s.max_spend_usd == 0):
        raise InputError(f"{_where(source, 'budget.max_spend_usd')}: must be a number >= 0")
    for model_id, price in s.prices.items():
        get_model(model_id, _where(source, "budget.price_per_second_usd"))
        if not (_positive(price) or price == 0):
            raise InputError(f"{_where(source, f'budget.price_per_second_usd.{model_id}')}: must be a number >= 0")
    return s


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0


_VIDEO_KEYS = {f.name for f in fields(Settings)} - {"outputs_dir", "batch", "max_spend_usd", "prices", "source"}


def _section(data: dict, name: str, source: str) -> dict:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise InputError(f"{source}: '{name}' must be a mapping")
    return section


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from `path`, or from ./params.yaml when it exists, else the defaults."""
    if path is None:
        if not Path(PARAMS_FILE).is_file():
            return Settings()
        path = PARAMS_FILE
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise InputError(f"{source}: params file not found")
    # YAML 1.2, as DVC reads and rewrites it (`dvc exp run -S` drops the quotes of "16:9"; YAML 1.1 would
    # read the bare 16:9 as the sexagesimal number 969).
    data = read_yaml(path, parse_yaml) or {}
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping at the top level")

    video = _section(data, "video_settings", source)
    unknown = sorted(set(video) - _VIDEO_KEYS)
    if unknown:
        raise InputError(
            f"{source}: video_settings.{unknown[0]}: unknown key (known: {', '.join(sorted(_VIDEO_KEYS))})"
        )
    output = _section(data, "output", source)
    budget = _section(data, "budget", source)
    prices = budget.get("price_per_second_usd") or {}
    if not isinstance(prices, dict):
        raise InputError(f"{source}: budget.price_per_second_usd must be a mapping of model id to USD")
    defaults = Settings()
    outputs_dir = output.get("video_outputs_dir", str(defaults.outputs_dir))
    if not isinstance(outputs_dir, str) or not outputs_dir.strip():
        raise InputError(f"{source}: output.video_outputs_dir must be a folder path")
    settings = replace(
        defaults,
        **video,
        outputs_dir=Path(outputs_dir),
        batch=output.get("batch", defaults.batch),
        max_spend_usd=budget.get("max_spend_usd"),
        prices={**defaults.prices, **prices},
        source=source,
    )
    return validate(settings, source)
