"""Plan: for every stale scene, how it will be brought up to date and what that costs, writing nothing.

A scene is restored from DVC's local cache (its recorded clip, or a run-cache entry for its current inputs),
pulled from the default remote when that holds it (a fresh clone, another branch's or another machine's run),
or generated, priced at the model's rate per output second (the offline backend is free). Only what will be
generated counts against `budget.max_spend_usd`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..job import validate_job
from ..models import get_model
from ..params import Settings
from .declare import ConceptDecl, SceneDecl
from .resolve import images_problem, job_for, scene_inputs
from .verdict import CHECKOUT, ConceptStatus, SceneStatus, StatusReport
from .verdict import PULL as PULL_FIX

if TYPE_CHECKING:
    from dvc.repo import Repo

GENERATE, RESTORE, PULL = "generate", "restore", "pull"


@dataclass(slots=True)
class PlannedScene:
    status: SceneStatus
    model: str
    seconds: int
    backend: str
    cost_usd: float  # what generating it costs (0 for the offline backend)
    how: str = GENERATE  # generate | restore (local cache) | pull (default remote)
    problem: str | None = None  # an input that stops it from being generated (e.g. an unreadable frame)

    @property
    def stage(self) -> str:
        return self.status.decl.address

    @property
    def generate(self) -> bool:
        return self.how == GENERATE and self.problem is None

    def as_dict(self) -> dict[str, Any]:
        decl = self.status.decl
        return {
            "stage": decl.address, "key": decl.key, "concept": decl.ref.name, "scene": decl.number,
            "clip": decl.clip, "model": self.model, "seconds": self.seconds, "backend": self.backend,
            "how": self.how, "cost_usd": round(self.cost_usd if self.generate else 0.0, 4),
            "problem": self.problem, "reasons": [r.as_dict() for r in self.status.reasons],
        }


@dataclass
class Plan:
    scenes: list[PlannedScene]
    max_spend_usd: float | None

    @property
    def to_generate(self) -> list[PlannedScene]:
        return [p for p in self.scenes if p.generate]

    @property
    def restored(self) -> list[PlannedScene]:
        return [p for p in self.scenes if p.how != GENERATE]

    @property
    def blocked(self) -> list[PlannedScene]:
        return [p for p in self.scenes if p.how == GENERATE and p.problem]

    @property
    def total_usd(self) -> float:
        return sum(p.cost_usd for p in self.to_generate)

    @property
    def total_seconds(self) -> int:
        return sum(p.seconds for p in self.to_generate)

    @property
    def over_budget(self) -> bool:
        return _over_budget(self.total_usd, self.max_spend_usd)

    def budget_error(self) -> InputError:
        return _budget_error(self.total_usd, len(self.to_generate), self.max_spend_usd)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenes": [p.as_dict() for p in self.scenes],
            "generate": len(self.to_generate),
            "restore": sum(p.how == RESTORE for p in self.scenes),
            "pull": sum(p.how == PULL for p in self.scenes),
            "blocked": len(self.blocked),
            "total_seconds": self.total_seconds,
            "total_usd": round(self.total_usd, 4),
            "max_spend_usd": self.max_spend_usd,
            "over_budget": self.over_budget,
        }


@dataclass
class Tally:
    """What `s9 repro` keeps of its plan while it runs: each stale scene's way, by stage address, the scenes it
    generates (address, and concept and number for display), and the cost the budget is checked against. A
    plan's scenes hold their statuses and declarations, about a kilobyte each: over thousands of scenes, memory
    that grew with the repository for the whole run."""

    max_spend_usd: float | None
    how: dict[str, str] = field(default_factory=dict)  # stage address -> generate | restore | pull
    generating: list[tuple[str, str, int]] = field(default_factory=list)  # (address, concept, scene number)
    total_usd: float = 0.0

    def add(self, planned: list[PlannedScene]) -> None:
        for item in planned:
            decl = item.status.decl
            self.how[decl.address] = item.how
            if item.generate:
                self.generating.append((decl.address, decl.ref.name, decl.number))
                self.total_usd += item.cost_usd

    @property
    def over_budget(self) -> bool:
        return _over_budget(self.total_usd, self.max_spend_usd)

    def budget_error(self) -> InputError:
        return _budget_error(self.total_usd, len(self.generating), self.max_spend_usd)


def _over_budget(total_usd: float, max_spend_usd: float | None) -> bool:
    return max_spend_usd is not None and total_usd > max_spend_usd + 1e-9


def _budget_error(total_usd: float, scenes: int, max_spend_usd: float | None) -> InputError:
    return InputError(
        f"plan estimate ${total_usd:.2f} for {scenes} scene(s) exceeds budget.max_spend_usd "
        f"${max_spend_usd or 0:.2f} in params.yaml; nothing was submitted (raise the budget or repro fewer targets)"
    )


def make_plan(root: Path, report: StatusReport, settings: Settings, repo: Repo | None = None,
              *, remote: bool = False, generate: frozenset[str] = frozenset()) -> Plan:
    """Price every stale scene of the report; with a `repo`, find what DVC's cache (and, with `remote`, the
    default remote) already holds. Reads only: nothing is written or downloaded. Scenes whose stage address is
    in `generate` (fresh takes) are generated whatever the caches hold."""
    planned: list[PlannedScene] = []
    for concept in report.concepts:
        planned += plan_concept(root, concept, settings, repo, remote=remote, generate=generate)
    return Plan(planned, settings.max_spend_usd)


def plan_concept(root: Path, concept: ConceptStatus, settings: Settings, repo: Repo | None = None,
                 *, remote: bool = False, generate: frozenset[str] = frozenset()) -> list[PlannedScene]:
    """The plan for one concept's stale scenes (what `make_plan` does per concept). What it returns refers to
    the scenes' declarations only, not to the concept's step-7 data, so a caller can keep it for thousands."""
    stale = concept.stale_scenes
    if not stale:
        return []
    from . import dvcside

    model = get_model(settings.video_model)
    price = 0.0 if settings.backend == "offline" else settings.price_per_second(model.id)
    entries = scene_inputs(concept.decl, settings)
    # A run-cache entry can only be found where one can exist: locally, or on the remote.
    runs = repo is not None and (remote or dvcside.has_local_run_cache(repo))
    pipeline = dvcside.pipeline_data(concept.decl) if runs else None
    planned: list[PlannedScene] = []
    for status in stale:
        decl = status.decl
        scene = concept.decl.concept.scene(decl.number)
        seconds, _ = model.snap_duration(scene.duration_seconds or settings.duration_seconds)
        item = PlannedScene(status, model.id, seconds, settings.backend, seconds * price)
        if repo is not None and decl.address not in generate:  # a fresh take is generated whatever is cached
            item.how = _source(repo, concept.decl, status, entries[decl.stage], remote, pipeline)
        if item.how == GENERATE:
            item.problem = _input_problem(root, concept.decl, decl)
            if item.problem is None:  # what the model's schema refuses is refused here, before spending
                _validate(root, concept.decl, decl, settings)
        planned.append(item)
    return planned


def _source(repo: Repo, concept: Any, status: SceneStatus, entry: dict, remote: bool,
            pipeline: dict | None) -> str:
    """restore | pull | generate, for one stale scene (`pipeline`: the concept's parsed pipeline, None when
    no run-cache entry can exist)."""
    from . import dvcside

    if all(r.kind == "output" for r in status.reasons):
        if status.fix == CHECKOUT:
            return RESTORE
        if status.fix == PULL_FIX and remote:
            return PULL if dvcside.locked_outs_on_remote(repo, concept.ref.dvc_file, status.decl.stage) else GENERATE
        return GENERATE
    if pipeline is None:
        return GENERATE
    stage = dvcside.virtual_stage(repo, concept, status.decl.stage, entry, pipeline)
    if stage is None:
        return GENERATE
    found = dvcside.local_run_cache_entry(stage)
    if found is not None and dvcside.entry_cached(repo, found):
        return RESTORE
    if remote:
        found = dvcside.remote_run_cache_entry(repo, stage)
        if found is not None and dvcside.entry_on_remote(repo, found):
            return PULL
    return GENERATE


def _validate(root: Path, concept: ConceptDecl, decl: SceneDecl, settings: Settings) -> None:
    with contextlib.chdir(root):
        validate_job(job_for(concept, decl, settings))


def _input_problem(root: Path, concept: ConceptDecl, decl: SceneDecl) -> str | None:
    """Why a scene's images cannot be sent, or None: it is flagged instead of priced."""
    with contextlib.chdir(root):  # messages name the frame as the repo does
        return images_problem(concept, decl)
