"""One small spec per video model: everything that differs between models lives here.

Adding a model is one spec instance in its family's module (or a new family module with one small subclass
when its inputs are new), one line in `MODELS` below, and its schema snapshot in `s9/assets/schemas/`.
"""

from __future__ import annotations

import difflib
from datetime import date

from ..errors import InputError, describe
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
    "Problem", "alternatives", "did_you_mean", "get_model", "sunset_warning",
]


def did_you_mean(value: object) -> str | None:
    """The model id `value` most likely meant: the one whose name it is (`veo-3.1-fast` without its owner),
    else the closest id or name by spelling; None when nothing is close."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower()
    by_name = {m.id.split("/", 1)[1].lower(): m.id for m in MODELS.values()}
    by_id = {m.id.lower(): m.id for m in MODELS.values()}
    if text in by_id:  # only the case differed
        return by_id[text]
    name = text.split("/")[-1]
    if name in by_name:  # the owner left out (or a wrong one)
        return by_name[name]
    starting = [full for short, full in by_name.items() if short.startswith(name)]
    if len(starting) == 1:  # `kling` -> kwaivgi/kling-v2.1; `veo` is ambiguous
        return starting[0]
    close = difflib.get_close_matches(text, [*by_id, *by_name], n=1, cutoff=0.75)
    if not close:
        return None
    return by_id.get(close[0]) or by_name[close[0]]


def unknown_model(value: object, where: str) -> InputError:
    """`<where>: unknown model 'x' (did you mean google/veo-3.1-fast? known models: …)`."""
    guess = did_you_mean(value)
    hint = f"did you mean {guess}? " if guess and guess != value else ""
    return InputError(f"{where}: unknown model {describe(value)} ({hint}known models: {', '.join(MODELS)})")


def get_model(model_id: str, source: str = "video_model") -> ModelSpec:
    """The spec for a model id, or an input error that lists the known ones."""
    try:
        return MODELS[model_id]
    except (KeyError, TypeError):
        raise unknown_model(model_id, source) from None


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
