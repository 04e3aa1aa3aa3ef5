"""The DVC side of s9, read as a stage's life: declare (which concepts and scene stages exist, the pipeline
file each concept gets), resolve (each scene's exact model input), check (what is stale and why, what fixes
it), plan (restore, pull or generate, and the cost), run (in parallel under DVC's repo lock, or one stage as
`dvc repro` runs it), record (dvc.lock, run cache, metrics). `dvcside` holds every use of DVC's internals.

It knows nothing about HTTP or encoding: scenes become jobs through `s9.job` and run through `s9.runner`.
"""

from .check import compute_status
from .declare import ConceptDecl, SceneDecl, declared, template_text
from .exp import ExpResult, exp_run
from .layout import ConceptRef, find_root
from .plan import Plan, PlannedScene
from .register import AddResult, RemoveResult, SyncResult, add_concept, remove_concept, sync
from .run import ReproResult, plan, repro, resolve_stage, run_stage, status
from .verdict import Reason, SceneStatus, StatusReport

__all__ = [
    "AddResult",
    "ConceptDecl",
    "ConceptRef",
    "ExpResult",
    "Plan",
    "PlannedScene",
    "Reason",
    "RemoveResult",
    "ReproResult",
    "SceneDecl",
    "SceneStatus",
    "StatusReport",
    "SyncResult",
    "add_concept",
    "compute_status",
    "declared",
    "exp_run",
    "find_root",
    "plan",
    "remove_concept",
    "repro",
    "resolve_stage",
    "run_stage",
    "status",
    "sync",
    "template_text",
]
