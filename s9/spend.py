"""What was actually paid, from the prediction journal: per prediction, its billed basis (seconds of output x
the model's price per second, and the API's `predict_time`), summed per model, concept and day.

`actual_cost(fingerprints)` is what the DVC side reports beside its estimate: the cost of the predictions
made for those clips (a clip paid for twice -- an expired output, a prediction replaced -- counts twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .journal import JOURNAL_DIR, Journal, parse_utc
from .state import STATE_DIR


@dataclass(frozen=True)
class Charge:
    """One paid prediction."""

    prediction_id: str
    fingerprint: str
    model: str
    concept: str
    scene: int | None
    day: str  # UTC day it completed, YYYY-MM-DD
    output_seconds: float
    price_per_second: float
    cost_usd: float
    predict_time: float | None


@dataclass
class Totals:
    predictions: int = 0
    output_seconds: float = 0.0
    cost_usd: float = 0.0

    def add(self, charge: Charge) -> None:
        self.predictions += 1
        self.output_seconds += charge.output_seconds
        self.cost_usd += charge.cost_usd


@dataclass
class Spend:
    charges: list[Charge]
    total: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)
    by_concept: dict[str, Totals] = field(default_factory=dict)
    by_day: dict[str, Totals] = field(default_factory=dict)
    unreadable: list[Path] = field(default_factory=list)  # journal entries that could not be counted

    def as_dict(self) -> dict[str, Any]:
        def table(groups: dict[str, Totals]) -> dict[str, Any]:
            return {key: _rounded(asdict(value)) for key, value in sorted(groups.items())}

        return {
            "total": _rounded(asdict(self.total)),
            "by_model": table(self.by_model),
            "by_concept": table(self.by_concept),
            "by_day": table(self.by_day),
            "predictions": [asdict(c) for c in self.charges],
            "unreadable_entries": [str(p) for p in self.unreadable],
        }


def journal_for(root: Path | None = None) -> Journal:
    """The journal of the project at `root` (default: the one found from the working directory)."""
    return Journal(Path(root) / STATE_DIR / JOURNAL_DIR) if root is not None else Journal()


def charges(root: Path | None = None, since: date | None = None) -> list[Charge]:
    """Every paid prediction journaled in the project at `root`, oldest first (from `since`, a UTC day)."""
    return _charges(journal_for(root), since)


def _charges(journal: Journal, since: date | None = None, only: set[str] | None = None) -> list[Charge]:
    seen: set[str] = set()
    out: list[Charge] = []
    for fp, entry in journal.entries().items():
        if only is not None and fp not in only:
            continue
        for record in entry.charges:
            pid = record.get("prediction_id")
            if not isinstance(pid, str) or pid in seen:
                continue  # the same prediction recorded twice (re-downloaded) is paid once
            seen.add(pid)
            completed = parse_utc(record.get("completed_at")) or entry.updated_at
            day = datetime.fromtimestamp(completed, UTC).date()
            if since is not None and day < since:
                continue
            out.append(Charge(
                prediction_id=pid, fingerprint=fp, model=str(record.get("model") or entry.model),
                concept=str(record.get("concept") or entry.concept or "?"), scene=record.get("scene"),
                day=day.isoformat(), output_seconds=float(record.get("output_seconds") or 0),
                price_per_second=float(record.get("price_per_second") or 0),
                cost_usd=float(record.get("cost_usd") or 0), predict_time=record.get("predict_time"),
            ))
    out.sort(key=lambda c: (c.day, c.concept, c.scene or 0, c.prediction_id))
    return out


def spend(root: Path | None = None, since: date | None = None) -> Spend:
    """`s9 spend`: the paid predictions of the project at `root`, summed per model, concept and day."""
    journal = journal_for(root)
    result = Spend(_charges(journal, since), unreadable=journal.corrupt())
    for charge in result.charges:
        result.total.add(charge)
        for groups, key in ((result.by_model, charge.model), (result.by_concept, charge.concept),
                            (result.by_day, charge.day)):
            groups.setdefault(key, Totals()).add(charge)
    return result


def actual_cost(fingerprints: str | Iterable[str], root: Path | None = None) -> float:
    """USD actually paid for the clips with these job fingerprints (`Job.fingerprint`), in the project at `root`:
    every prediction made for them, including any paid again after an output expired."""
    wanted = {fingerprints} if isinstance(fingerprints, str) else set(fingerprints)
    return round(sum(c.cost_usd for c in _charges(journal_for(root), only=wanted)), 6)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
