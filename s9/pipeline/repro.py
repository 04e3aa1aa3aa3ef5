"""Running stale scene stages: in parallel in-process (`repro`), or one at a time as DVC's stage command."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from ..backends import Backend, get_backend
from ..errors import InputError, S9Error
from ..job import Job, build_job, infer_batch, output_name
from ..models import get_model
from ..params import Settings, load_settings
from ..runner import Listener, SceneResult, Summary, check_writable, run_jobs
from ..scenes import load_concept
from . import dvcside
from .plan import Plan, make_plan
from .registry import VARS_FILE, SyncResult, project_settings, sync
from .status import StatusReport, compute_status


@dataclass
class Refreshed:
    sync: SyncResult
    settings: Settings
    status: StatusReport


def refresh(root: Path, targets: list[str] | None = None, *, outputs: bool = True) -> Refreshed:
    """Re-sync the vars file (params or data/ may have changed), then compute staleness."""
    root = Path(root).resolve()
    settings = project_settings(root)
    synced = sync(root, settings)
    return Refreshed(synced, settings, compute_status(root, targets, outputs=outputs))


def status(root: Path, targets: list[str] | None = None, *, outputs: bool = True) -> StatusReport:
    """`s9 status`: which scenes are stale and why (re-syncs the vars file first, like repro).

    `outputs=False`: ignore the clips themselves, check only that dvc.lock matches the inputs (CI without pull).
    """
    return refresh(root, targets, outputs=outputs).status


def plan(root: Path, targets: list[str] | None = None) -> Plan:
    """`s9 plan`: the scenes a repro would generate and their estimated cost; nothing is generated."""
    root = Path(root).resolve()
    fresh = refresh(root, targets)
    restorable: set[str] = set()
    if fresh.status.stale:
        with contextlib.chdir(root), dvcside.open_repo(root, lock=False) as repo:
            stages = dvcside.load_stages(repo, [s.entry.stage for s in fresh.status.stale])
            restorable = {name for name, stage in stages.items() if dvcside.run_cache_stage(repo, stage)}
    return make_plan(root, fresh.status, fresh.settings, restorable)


@dataclass
class ReproResult:
    plan: Plan
    summary: Summary  # generated scenes (restored ones are not in it)
    restored: list[str] = field(default_factory=list)  # stages checked out from DVC's run cache
    rerecorded: list[str] = field(default_factory=list)  # prompt entry only moved in its list: lock key updated
    recorded: list[str] = field(default_factory=list)  # stages written to dvc.lock

    @property
    def ok(self) -> bool:
        return self.summary.ok


def repro(
    root: Path,
    targets: list[str] | None = None,
    *,
    workers: int | None = None,
    listener: Listener | None = None,
    backend: Backend | None = None,
) -> ReproResult:
    """Bring every stale scene stage (or those of `targets`) up to date, leaving dvc.lock as `dvc repro` would.

    Order: sync, status, plan; refuse over budget (`InputError`, nothing submitted); restore what DVC's run
    cache has; remove the outs of the rest and generate them concurrently with the runner; record only the
    scenes that succeeded (a failed one stays stale). DVC's repo lock is held throughout, as `dvc repro`
    holds it, so the two never interleave.
    """
    root = Path(root).resolve()
    with contextlib.chdir(root):  # stage commands run at the root: relative paths and debug files match
        fresh = refresh(root, targets)
        settings = fresh.settings
        if fresh.status.up_to_date:
            return ReproResult(make_plan(root, fresh.status, settings), Summary([], 0.0, 0))
        with dvcside.open_repo(root, lock=True) as repo:
            stages = dvcside.load_stages(repo, [s.entry.stage for s in fresh.status.stale])
            moved = {s.entry.stage for s in fresh.status.stale if s.moved_only}
            cached = {}
            for name, stage in stages.items():
                if name in moved:
                    continue
                hit = dvcside.run_cache_stage(repo, stage)
                if hit is not None:
                    cached[name] = hit
            the_plan = make_plan(root, fresh.status, settings, set(cached))
            if the_plan.over_budget:
                raise the_plan.budget_error()
            backend = backend or get_backend(settings.backend, settings)
            if the_plan.to_generate:
                backend.check()
            for name, stage in stages.items():  # as `dvc repro` does before restoring or running a stage
                if name not in moved:
                    dvcside.remove_outs(stage)
            for hit in cached.values():
                dvcside.restore(hit)

            jobs: list[Job] = []
            unbuildable: list[SceneResult] = []
            for planned in the_plan.to_generate:
                entry = planned.status.entry
                try:
                    concept = load_concept(entry.prompts)
                    jobs.append(build_job(concept, entry.scene, Path(entry.frame), settings, output=Path(entry.clip)))
                except S9Error as exc:  # e.g. a first frame broken after registration: this scene only
                    unbuildable.append(SceneResult(f"{entry.concept} scene {entry.scene}", entry.scene, ok=False,
                                                   error=str(exc)))
            for folder in {job.output.parent for job in jobs}:
                check_writable(folder)

            finished: list[SceneResult] = []

            def collect(kind: str, result: SceneResult) -> None:
                if kind == "done":
                    finished.append(result)
                if listener:
                    listener(kind, result)

            for result in unbuildable:
                collect("done", result)
            by_label = {f"{e.concept} scene {e.scene}": e.stage for e in (p.status.entry for p in the_plan.scenes)}
            try:
                summary = run_jobs(jobs, backend, workers or settings.max_workers, collect)
            finally:
                # Even on Ctrl-C, what finished is recorded; what did not stays stale.
                ok = set(cached) | moved | {by_label[r.label] for r in finished if r.ok}
                done = [name for name in stages if name in ok]  # dvc.yaml order, as `dvc repro` writes them
                dvcside.record([stages[name] for name in done])
                backend.close()
            summary.results = unbuildable + summary.results
            return ReproResult(the_plan, summary, [name for name in stages if name in cached],
                               [name for name in stages if name in moved], done)


# -- the stage command ----------------------------------------------------------------------------------
def expected_clip(prompts: Path, concept_name: str, scene_number: int, settings: Settings) -> Path:
    batch = infer_batch(Path(prompts), concept_name) or settings.batch
    model = get_model(settings.video_model)
    return settings.outputs_dir / batch / concept_name / output_name(concept_name, scene_number, model)


def stage_job(prompts: Path, scene_number: int, frame: Path, clip: Path, settings: Settings) -> Job:
    """The job a dvc.yaml scene stage runs; refuses an out name that does not match params.yaml.

    The out name carries the model suffix, taken from the vars file when it was last synced: after a model
    change without `s9 sync`, plain `dvc repro` would otherwise label a new model's clip with the old name.
    """
    concept = load_concept(prompts)
    want = expected_clip(prompts, concept.name, scene_number, settings)
    if Path(clip).as_posix() != want.as_posix():
        raise InputError(
            f"{clip}: stage out does not match params.yaml (video_model {settings.video_model} writes {want}); "
            f"{VARS_FILE} is out of date: run `s9 sync` (or use `s9 repro`), then repro again"
        )
    return build_job(concept, scene_number, Path(frame), settings, output=Path(clip))


def run_stage(prompts: Path, scene_number: int, frame: Path, clip: Path, listener: Listener | None = None) -> Summary:
    """`s9 stage`: what `dvc repro` runs for one scene (reads ./params.yaml like DVC's params deps)."""
    settings = load_settings()
    job = stage_job(prompts, scene_number, frame, clip, settings)
    backend = get_backend(settings.backend, settings)
    backend.check()
    check_writable(job.output.parent)
    try:
        return run_jobs([job], backend, 1, listener)
    finally:
        backend.close()
