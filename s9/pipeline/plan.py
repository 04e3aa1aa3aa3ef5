"""What a repro would generate and what it would cost, without generating or calling any API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..models import get_model
from ..params import Settings
from ..scenes import Concept, load_concept
from .status import SceneStatus, StatusReport


@dataclass
class PlannedScene:
    status: SceneStatus
    model: str
    seconds: int
    backend: str
    cost_usd: float
    restorable: bool = False  # not generated: restored from DVC's run cache, or only re-recorded (moved)

    @property
    def stage(self) -> str:
        return self.status.entry.stage

    @property
    def how(self) -> str:
        if not self.restorable:
            return "generate"
        return "re-record" if self.status.moved_only else "run cache"

    def as_dict(self) -> dict[str, Any]:
        entry = self.status.entry
        return {
            "stage": entry.stage,
            "concept": entry.concept,
            "scene": entry.scene,
            "clip": entry.clip,
            "model": self.model,
            "seconds": self.seconds,
            "backend": self.backend,
            "cost_usd": round(self.cost_usd, 4),
            "generate": not self.restorable,
            "how": self.how,
            "reasons": [r.as_dict() for r in self.status.reasons],
        }


@dataclass
class Plan:
    scenes: list[PlannedScene]
    max_spend_usd: float | None

    @property
    def to_generate(self) -> list[PlannedScene]:
        return [p for p in self.scenes if not p.restorable]

    @property
    def restored(self) -> list[PlannedScene]:
        return [p for p in self.scenes if p.restorable]

    @property
    def total_usd(self) -> float:
        return sum(p.cost_usd for p in self.to_generate)

    @property
    def total_seconds(self) -> int:
        return sum(p.seconds for p in self.to_generate)

    @property
    def over_budget(self) -> bool:
        return self.max_spend_usd is not None and self.total_usd > self.max_spend_usd + 1e-9

    def budget_error(self) -> InputError:
        return InputError(
            f"plan estimate ${self.total_usd:.2f} for {len(self.to_generate)} scene(s) exceeds "
            f"budget.max_spend_usd ${self.max_spend_usd:.2f} in params.yaml; nothing was submitted "
            "(raise the budget or repro fewer targets)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenes": [p.as_dict() for p in self.scenes],
            "generate": len(self.to_generate),
            "not_generated": len(self.restored),
            "total_seconds": self.total_seconds,
            "total_usd": round(self.total_usd, 4),
            "max_spend_usd": self.max_spend_usd,
            "over_budget": self.over_budget,
        }


def make_plan(root: Path, report: StatusReport, settings: Settings, restorable: set[str] | None = None) -> Plan:
    """Price every stale scene: snapped duration x the model's price per second (offline is free)."""
    model = get_model(settings.video_model)
    price = 0.0 if settings.backend == "offline" else settings.price_per_second(model.id)
    concepts: dict[str, Concept] = {}
    planned = []
    for status in report.stale:
        entry = status.entry
        if entry.prompts not in concepts:
            concepts[entry.prompts] = load_concept(Path(root) / entry.prompts)
        scene = concepts[entry.prompts].scene(entry.scene)
        seconds, _ = model.snap_duration(scene.duration_seconds or settings.duration_seconds)
        cached = status.moved_only or entry.stage in (restorable or set())
        planned.append(PlannedScene(status, model.id, seconds, settings.backend,
                                    0.0 if cached else seconds * price, cached))
    return Plan(planned, settings.max_spend_usd)
