"""Record: what a finished run leaves behind besides dvc.lock: each concept's DVC metrics file, and s9's own
hash cache warmed with the hashes DVC just computed (so the first `s9 status` after a repro rehashes nothing).

The metrics are computed from the outputs themselves, never from wall-clock time, so the same clips give the
same file on every machine and `dvc exp show` compares experiments on what they made and what it costs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..debugfile import RECEIPT
from ..models import get_model
from ..params import Settings
from .declare import ConceptDecl
from .layout import ConceptRef
from .memo import ConceptState

ERROR_FILE = "error.txt"  # written by the runner beside a failed scene's debug file


def concept_metrics(root: Path, decl: ConceptDecl, settings: Settings) -> dict[str, Any]:
    """Clips present, seconds of video, estimated cost (the model's list price for every scene), what those clips
    actually cost and the model time they took (each clip's receipt, kept in its debug folder, so the figures
    travel with the clips), and failed scenes (an `error.txt` in the scene's debug folder)."""
    model = get_model(decl.model)
    price = settings.price_per_second(model.id)
    clips = seconds = failed = 0
    estimated = actual = generation = 0.0
    for scene_decl in decl.scenes:
        scene = decl.concept.scene(scene_decl.number)
        length, _ = model.snap_duration(scene.duration_seconds or settings.duration_seconds)
        estimated += length * price
        if (root / scene_decl.clip).is_file():
            clips += 1
            seconds += length
            receipt = _receipt(root / scene_decl.debug / RECEIPT)
            actual += _number(receipt.get("cost_usd"))
            generation += _number(receipt.get("predict_seconds"))
        if (root / scene_decl.debug / ERROR_FILE).is_file():
            failed += 1
    return {
        "scenes": len(decl.scenes),
        "clips": clips,
        "video_seconds": seconds,
        "estimated_cost_usd": round(estimated, 4),
        "actual_cost_usd": round(actual, 4),
        "generation_seconds": round(generation, 3),
        "failed_scenes": failed,
    }


def _receipt(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a clip made before receipts existed, or restored without one: nothing known
    return data if isinstance(data, dict) else {}


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def write_metrics(root: Path, decl: ConceptDecl, settings: Settings) -> bool:
    """Rewrite the concept's metrics file when its content changed; True when it was written."""
    text = json.dumps(concept_metrics(root, decl, settings), indent=2) + "\n"
    path = root / decl.ref.metrics_file
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_text_atomic(path, text)
    return True


def warm_hashes(root: Path, ref: ConceptRef, recorded: dict[str, str]) -> None:
    """Remember `{repo-relative file: md5}` that DVC just computed for a concept's recorded stages, keyed by
    their stat, in the concept's own state."""
    if not recorded:
        return
    state = ConceptState(root, ref)
    for rel, md5 in recorded.items():
        path = root / rel
        if path.is_file() and not md5.endswith(".dir"):
            state.hashes.remember(path, os.stat(path), md5)
    state.save()
