"""One small spec per video model: everything that differs between models lives here.

Adding a model is one spec instance in its family's module (or a new family module with one small subclass
when its inputs are new), one line in `MODELS` below, and its schema snapshot in `s9/assets/schemas/`.
"""

from __future__ import annotations

from datetime import date

from ..errors import InputError
from .base import ASPECT_RATIOS, PRICE_DATE, RESOLUTIONS, SCENE_EXTRAS, ModelSpec, Problem
from .hailuo import HAILUO_02
from .kling import KLING_V21
from .sora import SORA_2
from .veo import VEO_3_FAST, VEO_31, VEO_31_FAST
from .wan import WAN_25_I2V

# Prices are rough public list prices per output second (PRICE_DATE); params.yaml `budget.price_per_second_usd`
# wins. The order is the order of preference when a model is gone and alternatives are suggested.
MODELS: dict[str, ModelSpec] = {
    m.id: m for m in (SORA_2, VEO_3_FAST, VEO_31_FAST, VEO_31, KLING_V21, HAILUO_02, WAN_25_I2V)
}
DEFAULT_MODEL = "google/veo-3.1-fast"

__all__ = [
    "ASPECT_RATIOS", "DEFAULT_MODEL", "MODELS", "PRICE_DATE", "RESOLUTIONS", "SCENE_EXTRAS", "ModelSpec",
    "Problem", "alternatives", "get_model", "sunset_warning",
]


def get_model(model_id: str, source: str = "video_model") -> ModelSpec:
    """The spec for a model id, or an input error that lists the known ones."""
    try:
        return MODELS[model_id]
    except (KeyError, TypeError):
        known = ", ".join(MODELS)
        raise InputError(f"{source}: unknown model {model_id!r} (known models: {known})") from None


def alternatives(model_id: str, limit: int = 4) -> list[str]:
    """Other models to try when `model_id` is gone: those without a shutdown date first, end-frame ones first."""
    others = [m for m in MODELS.values() if m.id != model_id and m.sunset is None]
    others.sort(key=lambda m: (m.id != DEFAULT_MODEL, not m.takes_last_frame))
    return [m.id for m in others[:limit]]


def sunset_warning(spec: ModelSpec, today: date | None = None) -> str | None:
    """What to tell a user of a model whose API shutdown was announced; None for the others."""
    if spec.sunset is None:
        return None
    today = today or date.today()
    past = today >= date.fromisoformat(spec.sunset)
    when = f"was shut down on {spec.sunset}" if past else f"is announced to shut down on {spec.sunset}"
    return (f"{spec.id}: {spec.sunset_note} {when}; expect its predictions to fail "
            f"(alternatives: {', '.join(alternatives(spec.id))})")
