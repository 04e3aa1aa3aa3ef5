"""What a check finds: each stale scene's reasons and the cheapest fix, per concept, and the report over the
repository (the concepts with something to report, and a count of the scenes of the others)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .declare import ConceptDecl, SceneDecl

# What fixes a stale scene, from cheapest to dearest.
CHECKOUT, PULL, REPRO = "dvc checkout", "dvc pull", "s9 repro"


@dataclass(frozen=True, slots=True)
class Reason:
    kind: str  # new | pipeline | inputs | input | frame | command | output | removed
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass(slots=True)
class SceneStatus:
    decl: SceneDecl
    reasons: list[Reason] = field(default_factory=list)
    fix: str = REPRO
    last_error: str | None = None  # a stale scene's last failure, from error.txt in its debug folder

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.decl.address, "scene": self.decl.number, "key": self.decl.key,
                "clip": self.decl.clip, "fix": self.fix, "reasons": [r.as_dict() for r in self.reasons],
                "last_error": self.last_error}


@dataclass
class ConceptStatus:
    decl: ConceptDecl
    reasons: list[Reason] = field(default_factory=list)  # the pipeline file or the `inputs` stage
    scenes: list[SceneStatus] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # files in its outputs folder no stage declares

    @property
    def stale_scenes(self) -> list[SceneStatus]:
        return [s for s in self.scenes if s.stale]

    @property
    def stale(self) -> bool:
        return bool(self.reasons) or any(s.stale for s in self.scenes)


@dataclass
class StatusReport:
    """The concepts with something to report (stale, or with undeclared files in their outputs folder), and how
    many scenes the others have: at thousands of scenes only what needs attention is kept."""

    concepts: list[ConceptStatus]
    orphans: list[str] = field(default_factory=list)  # pipeline folders of concepts no longer registered
    root_problem: str | None = None
    fresh_scenes: int = 0  # scenes of the up-to-date concepts, which are not listed

    @property
    def scenes(self) -> list[SceneStatus]:
        """The scenes of the listed concepts."""
        return [s for c in self.concepts for s in c.scenes]

    @property
    def total(self) -> int:
        """Every scene checked, listed or not."""
        return len(self.scenes) + self.fresh_scenes

    @property
    def stale(self) -> list[SceneStatus]:
        return [s for s in self.scenes if s.stale]

    @property
    def up_to_date(self) -> bool:
        return not self.orphans and not any(c.stale for c in self.concepts)

    def fix(self) -> str:
        """The one command that brings everything up to date, cheapest first."""
        if self.orphans or any(c.reasons for c in self.concepts):
            return REPRO
        fixes = {s.fix for s in self.stale}
        return REPRO if REPRO in fixes else PULL if PULL in fixes else CHECKOUT

    def as_dict(self) -> dict[str, Any]:
        return {
            "up_to_date": self.up_to_date,
            "scenes": self.total,
            "stale": len(self.stale),
            "fix": None if self.up_to_date else self.fix(),
            "orphans": self.orphans,
            "concepts": {
                c.decl.ref.name: {
                    "batch": c.decl.ref.batch,
                    "pipeline": c.decl.ref.dvc_file.as_posix(),
                    "reasons": [r.as_dict() for r in c.reasons],
                    "stale": [s.as_dict() for s in c.stale_scenes],
                    "leftovers": c.leftovers,
                }
                for c in self.concepts if c.stale or c.leftovers
            },
        }
