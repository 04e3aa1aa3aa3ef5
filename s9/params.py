"""Reading and validating params.yaml into a `Settings` value, with the defaults in one place."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import InputError, describe
from .models import ASPECT_RATIOS, MODELS, RESOLUTIONS, unknown_model
from .scenes import check_batch_name, parse_duration
from .yamlio import parse_owned_yaml, read_yaml

BACKENDS = ("offline", "replicate")
# Scene continuity: with next_first_frame, scene N ends on scene N+1's first frame (models that take an end frame).
CONTINUITY = ("none", "next_first_frame")
PARAMS_FILE = "params.yaml"
# Scenes in flight at once. A replicate scene in flight is one held request or poll (creates are paced to the
# account's limit), so hundreds are fine; the offline renderer never renders more clips at once than cores.
MAX_WORKERS = 1000

# The video_settings keys that shape a clip: DVC scene stages depend on exactly these.
CLIP_PARAMS = ("video_model", "aspect_ratio", "duration_seconds", "resolution", "generate_audio", "backend",
               "continuity")


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


def _one_of(value: object, valid: tuple[str, ...] | dict[str, Any], where: str, problem: str,
            listed: str = "valid", number_hint: str = "") -> None:
    """`value` must be one of `valid`. Its type is checked before anything hashes or formats it: a list or a
    mapping (say, a YAML alias bomb) is named by its kind, a scalar echoed through `describe`."""
    if value is not None and not isinstance(value, str | int | float):
        raise InputError(f"{where}: must be text, got {describe(value)}")
    if value not in valid:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        hint = number_hint if number else ""
        raise InputError(f"{where}: {problem} {describe(value)} ({listed}: {', '.join(valid)}{hint})")


def _model_id(value: object, where: str) -> None:
    """A known model id; else one line with the id it most likely meant (`veo-3.1-fast` -> google/veo-3.1-fast)."""
    if value is not None and not isinstance(value, str | int | float):
        raise InputError(f"{where}: must be text, got {describe(value)}")
    if value not in MODELS:
        raise unknown_model(value, where)


def validate(s: Settings, source: str) -> Settings:
    """Check every value; an `InputError` names the key and what is valid."""
    _model_id(s.video_model, _where(source, "video_settings.video_model"))
    # A YAML 1.1 writer may have turned 16:9 into the base-60 number 969: say so, or the message baffles.
    _one_of(s.aspect_ratio, ASPECT_RATIOS, _where(source, "video_settings.aspect_ratio"), "invalid aspect ratio",
            number_hint='; write it as text, e.g. "16:9"')
    parse_duration(s.duration_seconds, _where(source, "video_settings"))
    _one_of(s.resolution, RESOLUTIONS, _where(source, "video_settings.resolution"), "invalid resolution")
    if not isinstance(s.generate_audio, bool):
        raise InputError(f"{_where(source, 'video_settings.generate_audio')}: must be true or false")
    _one_of(s.backend, BACKENDS, _where(source, "video_settings.backend"), "unknown backend")
    _one_of(s.continuity, CONTINUITY, _where(source, "video_settings.continuity"), "unknown continuity")
    if isinstance(s.max_workers, bool) or not isinstance(s.max_workers, int) or not 1 <= s.max_workers <= MAX_WORKERS:
        raise InputError(f"{_where(source, 'video_settings.max_workers')}: must be a whole number from 1 to "
                         f"{MAX_WORKERS}")
    if not _positive(s.prediction_timeout_seconds):
        raise InputError(f"{_where(source, 'video_settings.prediction_timeout_seconds')}: must be a number > 0")
    check_batch_name(s.batch, _where(source, "output.batch"))
    if s.max_spend_usd is not None and not (_positive(s.max_spend_usd) or s.max_spend_usd == 0):
        raise InputError(f"{_where(source, 'budget.max_spend_usd')}: must be a number >= 0")
    for model_id, price in s.prices.items():
        _model_id(model_id, _where(source, "budget.price_per_second_usd"))
        if not (_positive(price) or price == 0):
            raise InputError(f"{_where(source, f'budget.price_per_second_usd.{model_id}')}: must be a number >= 0")
    return s


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0


# params.yaml's layout: the one place that names its keys. Section -> {key: Settings field}. Every Settings
# field not placed in another section is a video_settings key of the same name, so a new video setting is
# one new field on Settings; a new key elsewhere is one entry here.
_ELSEWHERE = {
    "output": {"video_outputs_dir": "outputs_dir", "batch": "batch"},
    "budget": {"max_spend_usd": "max_spend_usd", "price_per_second_usd": "prices"},
}
_NOT_PARAMS = {"source"}
_VIDEO_KEYS = ({f.name for f in fields(Settings)} - _NOT_PARAMS
               - {name for keys in _ELSEWHERE.values() for name in keys.values()})
LAYOUT: dict[str, dict[str, str]] = {"video_settings": {k: k for k in sorted(_VIDEO_KEYS)}, **_ELSEWHERE}


def _key(key: object) -> str:
    """A key as a message shows it: plain when it is a plain word, else `describe`d (one line, short)."""
    return key if isinstance(key, str) and key.isprintable() and len(key) <= 60 else describe(key)


def _known_only(mapping: dict, known: Collection[str], source: str, prefix: str = "") -> None:
    """The first key (in file order) that is not in `known` is an error naming it and the known ones: a typo
    must not fall back to a default (with the replicate backend, a paid run of the wrong model)."""
    for key in mapping:
        if key not in known:
            raise InputError(f"{source}: {prefix}{_key(key)}: unknown key (known: {', '.join(sorted(known))})")


def _section(data: dict, name: str, source: str) -> dict:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise InputError(f"{source}: '{name}' must be a mapping")
    _known_only(section, LAYOUT[name], source, f"{name}.")
    return section


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from `path`, or from ./params.yaml when it exists, else the defaults."""
    if path is None:
        if not Path(PARAMS_FILE).exists():  # (one that exists but is no regular file is refused below)
            return Settings()
        path = PARAMS_FILE
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise InputError(f"{source}: params file not found")
    # YAML 1.2, as DVC reads and rewrites it (`dvc exp run -S` drops the quotes of "16:9"; YAML 1.1 would
    # read the bare 16:9 as the sexagesimal number 969).
    data = read_yaml(path, parse_owned_yaml) or {}
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping at the top level")
    _known_only(data, LAYOUT, source)
    given: dict[str, Any] = {}
    for name, keys in LAYOUT.items():
        section = _section(data, name, source)
        given.update({field: section[key] for key, field in keys.items() if key in section})
    defaults = Settings()
    prices = given.pop("prices", None) or {}
    if not isinstance(prices, dict):
        raise InputError(f"{source}: budget.price_per_second_usd must be a mapping of model id to USD")
    outputs_dir = given.pop("outputs_dir", str(defaults.outputs_dir))
    if not isinstance(outputs_dir, str) or not outputs_dir.strip():
        raise InputError(f"{source}: output.video_outputs_dir must be a folder path")
    settings = replace(defaults, **given, outputs_dir=Path(outputs_dir), prices={**defaults.prices, **prices},
                       source=source)
    return validate(settings, source)
