"""What `s9 models` shows: each model's durations, aspects, resolutions, audio, end frame, price and schema date,
read from the specs and their schemas (the cached live one when a run has fetched it, else the snapshot)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .models import MODELS, PRICE_DATE, sunset_warning
from .models.schema import read_cached, snapshot_schema
from .params import Settings


@dataclass(frozen=True)
class ModelInfo:
    id: str
    label: str
    durations: tuple[int, ...]
    aspects: tuple[str, ...]  # what the API takes; () when the clip follows the first frame's shape
    resolutions: tuple[str, ...]
    audio: bool
    end_frame: str | None  # the input that takes an end frame (continuity)
    extras: tuple[str, ...]  # the optional scene keys it takes
    price_per_second: float  # as params.yaml (or the default) says
    price_date: str
    schema_date: str
    schema_origin: str  # "snapshot" or "cached" (a live schema a run fetched)
    note: str | None  # e.g. an announced API shutdown

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def catalog(settings: Settings | None = None, cache_dir: Path | None = None) -> list[ModelInfo]:
    """Every known model; prices from `settings` (params.yaml), schemas from `cache_dir` when cached there."""
    settings = settings or Settings()
    rows = []
    for spec in MODELS.values():
        cached = read_cached(spec, cache_dir) if cache_dir is not None else None
        schema = cached[1] if cached is not None else snapshot_schema(spec)
        aspect_field = "aspect_ratio" if "aspect_ratio" in schema.properties else None
        resolution = schema.enum("resolution") or schema.enum("mode") or list(spec.resolutions)
        rows.append(ModelInfo(
            id=spec.id, label=spec.label,
            durations=tuple(spec.durations),
            aspects=tuple(schema.enum(aspect_field) or ()) if aspect_field else (),
            resolutions=tuple(str(r) for r in resolution),
            audio=spec.makes_audio(True),
            end_frame=spec.last_frame_field,
            extras=tuple(sorted(spec.extras)),
            price_per_second=settings.price_per_second(spec.id),
            price_date=PRICE_DATE,
            schema_date=schema.date,
            schema_origin=schema.origin,
            note=sunset_warning(spec),
        ))
    return rows
