"""The DVC side of s9: which scene stages exist (registry), which are stale and why (status), what a repro
would cost (plan), and running them in parallel while keeping dvc.lock exactly as `dvc repro` would (repro).

It knows nothing about HTTP or encoding: scenes become jobs through `s9.job` and run through `s9.runner`.
"""

from .plan import Plan, PlannedScene
from .registry import (
    DVC_FILE,
    LOCK_FILE,
    STAGE_GROUP,
    VARS_FILE,
    AddResult,
    RemoveResult,
    SceneEntry,
    SyncResult,
    add_concept,
    find_root,
    read_entries,
    remove_concept,
    sync,
    template_text,
)
from .repro import ReproResult, plan, refresh, repro, run_stage, stage_job, status
from .status import Reason, SceneStatus, StatusReport, compute_status

__all__ = [
    "DVC_FILE",
    "LOCK_FILE",
    "STAGE_GROUP",
    "VARS_FILE",
    "AddResult",
    "Plan",
    "PlannedScene",
    "Reason",
    "RemoveResult",
    "ReproResult",
    "SceneEntry",
    "SceneStatus",
    "StatusReport",
    "SyncResult",
    "add_concept",
    "compute_status",
    "find_root",
    "plan",
    "read_entries",
    "refresh",
    "remove_concept",
    "repro",
    "run_stage",
    "stage_job",
    "status",
    "sync",
    "template_text",
]
