"""Run: bring stale scenes up to date, in parallel in one process (`s9 repro`), or one stage at a time as the
commands plain `dvc repro` runs (`s9 resolve`, `s9 stage`).

`s9 repro` takes DVC's repo lock first and holds it throughout, as `dvc repro` does. It plans (nothing is
written if the plan is over budget), syncs and resolves the pipelines, restores what DVC's cache or the
default remote already holds, generates the rest concurrently through the runner, and records each generated
scene with the dependency values read when its job was built: a scene whose inputs changed while it ran is
not recorded (it stays stale, and the summary says so). A failed scene is never recorded.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_text_atomic
from ..backends import Backend, get_backend
from ..errors import InputError, S9Error
from ..job import Job, build_job, scene_input_problem
from ..runner import Listener, SceneResult, Summary, check_writable, run_jobs
from ..takes import fresh_take
from . import dvcside
from .check import REPRO, Reason, StatusReport, compute_status, select
from .declare import ConceptDecl, SceneDecl, project_settings
from .layout import INPUTS_STAGE, ConceptRef, find_root
from .plan import GENERATE, PULL, RESTORE, Plan, make_plan
from .record import warm_hashes, write_metrics
from .register import sync_locked
from .resolve import concept_decl, entry, read_inputs, render_inputs, run_resolve, scene_inputs

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    from ..params import Settings


@dataclass
class ReproResult:
    plan: Plan
    summary: Summary  # generated scenes (restored ones are not in it)
    restored: list[str] = field(default_factory=list)  # stage addresses checked out from the cache / remote
    recorded: list[str] = field(default_factory=list)  # scene stages written to dvc.lock
    resolved: list[str] = field(default_factory=list)  # concepts whose `inputs` stage was re-recorded
    changed: list[str] = field(default_factory=list)  # generated, not recorded: an input changed meanwhile

    @property
    def ok(self) -> bool:
        return self.summary.ok and not self.changed


def status(root: Path, targets: list[str] | None = None, *, outputs: bool = True) -> StatusReport:
    """`s9 status`: which scenes are stale and why. Writes nothing git tracks."""
    return compute_status(Path(root).resolve(), targets, outputs=outputs)


def plan(root: Path, targets: list[str] | None = None, *, pull: bool = True, new_take: bool = False) -> Plan:
    """`s9 plan`: what a repro would restore, pull or generate, and the cost; writes and downloads nothing.
    `new_take`: the targets' scenes as fresh takes (generated, and priced, even when up to date)."""
    root = Path(root).resolve()
    with contextlib.chdir(root):
        settings = project_settings(root)
        report = compute_status(root, targets, settings=settings)
        takes = take_addresses(report, targets) if new_take else frozenset()
        report = with_takes(report, takes)
        if report.up_to_date:
            return Plan([], settings.max_spend_usd)
        with dvcside.open_repo(root, lock=False) as repo:
            remote = pull and dvcside.default_remote(repo) is not None
            return make_plan(root, report, settings, repo, remote=remote, generate=takes)


# -- fresh takes (`--new-take`) ---------------------------------------------------------------------------
def take_addresses(report: StatusReport, targets: list[str] | None) -> frozenset[str]:
    """The scene stages a `--new-take` names: every scene of the targets. Targets are required: a take of
    everything is never what someone meant."""
    if not targets:
        raise InputError("--new-take: name the scenes to take again (e.g. `s9 repro --new-take tiny_p2`); it "
                         "never applies to every scene")
    return frozenset(s.decl.address for s in report.scenes)


def with_takes(report: StatusReport, takes: frozenset[str]) -> StatusReport:
    """`report` with each fresh-take scene stale (reason `take`), so it is planned, priced and generated."""
    if not takes:
        return report
    for scene in report.scenes:
        if scene.decl.address in takes:
            scene.reasons.append(Reason("take", "a fresh take of unchanged inputs (--new-take)"))
            scene.fix = REPRO
    return report


def repro(root: Path, targets: list[str] | None = None, *, workers: int | None = None,
          listener: Listener | None = None, backend: Backend | None = None, pull: bool = True,
          new_take: bool = False) -> ReproResult:
    """Bring every stale scene (or the targets') up to date, leaving the locks as `dvc repro` would.
    `new_take`: also make a fresh take of every scene the targets name (see `s9.takes`)."""
    root = Path(root).resolve()
    with contextlib.chdir(root), dvcside.open_repo(root, lock=True) as repo:
        return repro_locked(repo, root, targets, workers=workers, listener=listener, backend=backend, pull=pull,
                            new_take=new_take)


def repro_locked(repo: Repo, root: Path, targets: list[str] | None = None, *, workers: int | None = None,
                 listener: Listener | None = None, backend: Backend | None = None,
                 pull: bool = True, new_take: bool = False) -> ReproResult:
    """`repro` for a caller that already holds DVC's repo lock, with the working directory at the root."""
    settings = project_settings(root)
    before = compute_status(root, targets, settings=settings)
    takes = take_addresses(before, targets) if new_take else frozenset()
    before = with_takes(before, takes)
    remote = pull and dvcside.default_remote(repo) is not None
    the_plan = make_plan(root, before, settings, repo, remote=remote, generate=takes)
    if before.up_to_date:
        return ReproResult(the_plan, Summary([], 0.0, 0))
    if the_plan.over_budget:
        raise the_plan.budget_error()
    backend = backend or get_backend(settings.backend, settings)
    checked = _preflight(backend, [c.decl for c in before.concepts], the_plan, settings)
    synced = sync_locked(root, repo, settings)
    chosen, _ = select(synced.decls, targets)
    result = ReproResult(the_plan, Summary([], 0.0, 0))
    hashes: dict[str, str] = {}
    for decl in chosen:
        if _resolve_concept(repo, root, decl.ref, settings, hashes):
            result.resolved.append(decl.ref.name)
    warm_hashes(root, hashes)
    # Reloaded after resolving: the jobs are built from the step-7 files the inputs were resolved from.
    chosen = [concept_decl(root, d.ref, settings) for d in chosen]
    report = with_takes(compute_status(root, targets, settings=settings), takes)
    stale = {s.decl.address: s.decl for s in report.stale}
    stages = _load(repo, chosen, stale)
    # The plan found what the cache or the remote holds; a scene it did not is not looked for again (each
    # miss on a remote costs a round trip and a DVC warning).
    how = {p.stage: p.how for p in the_plan.scenes}
    if any(h == PULL for h in how.values()):
        dvcside.pull_run_cache(repo)
    for address, stage in stages.items():
        if how.get(address, RESTORE) != GENERATE and dvcside.restore(stage, pull=how.get(address) == PULL):
            result.restored.append(address)
    pending = [stale[a] for a in stages if a not in result.restored]
    _generate(repo, root, settings, chosen, pending, stages, result, workers, listener, backend, checked, takes)
    return result


def _load(repo: Repo, decls: list[ConceptDecl], stale: dict[str, SceneDecl]) -> dict[str, PipelineStage]:
    """The stale scene stages, loaded once per concept pipeline file, in pipeline order."""
    loaded: dict[str, PipelineStage] = {}
    for decl in decls:
        names = [s.stage for s in decl.scenes if s.address in stale]
        if names:
            for name, stage in dvcside.load_stages(repo, decl.ref.dvc_file, names).items():
                loaded[decl.ref.address(name)] = stage
    return loaded


def _resolve_concept(repo: Repo, root: Path, ref: ConceptRef, settings: Settings, hashes: dict[str, str]) -> bool:
    """What the `inputs` stage does, in process: write inputs.json and record the stage, when it is stale.
    Its deps are read first and again when recording: a step-7 file edited meanwhile is not recorded."""
    stage = dvcside.load_stages(repo, ref.dvc_file, [INPUTS_STAGE])[INPUTS_STAGE]
    before = dvcside.dep_values(stage)
    text = render_inputs(scene_inputs(concept_decl(root, ref, settings), settings))
    current = root / ref.inputs_file
    if not current.is_file() or current.read_text(encoding="utf-8") != text:
        write_text_atomic(current, text)
    elif not stage.changed():
        return False
    if not dvcside.record(stage, expected_deps=before):
        return False
    dvcside.dump([stage])
    hashes.update(dvcside.file_hashes(stage))
    return True


def _job(decl: ConceptDecl, scene: SceneDecl, settings: Settings) -> Job:
    """The job a scene stage runs: its declared clip, and the images its stage depends on."""
    return build_job(decl.concept, scene.number, Path(scene.frame), settings, output=Path(scene.clip),
                     batch=scene.ref.batch, next_frame=Path(scene.images[1]) if len(scene.images) > 1 else None)


def _preflight(backend: Backend, decls: list[ConceptDecl], the_plan: Plan, settings: Settings) -> bool:
    """Before anything is written: the token, and every job the plan generates against the model's schema.
    True when the backend was checked."""
    wanted = {p.stage for p in the_plan.to_generate}
    jobs = [_job(d, s, settings) for d in decls for s in d.scenes if s.address in wanted]
    if jobs:
        backend.check()
        backend.preflight(jobs)
    return bool(jobs)


@dataclass
class _Prepared:
    decl: SceneDecl
    stage: PipelineStage
    deps: dict[str, Any]  # dependency values read when the job was built
    entry: dict[str, Any]  # the scene's input entry the job was built from
    take: bool = False  # a fresh take: recorded in dvc.lock, not in the run cache


def _generate(repo: Repo, root: Path, settings: Settings, decls: list[ConceptDecl], pending: list[SceneDecl],
              stages: dict[str, PipelineStage], result: ReproResult, workers: int | None,
              listener: Listener | None, backend: Backend | None, checked: bool = False,
              takes: frozenset[str] = frozenset()) -> None:
    by_ref = {d.ref: d for d in decls}
    jobs: list[Job] = []
    prepared: dict[str, _Prepared] = {}
    failed: list[SceneResult] = []
    inputs: dict[ConceptRef, dict[str, Any]] = {}
    for scene in pending:
        decl = by_ref[scene.ref]
        stage = stages[scene.address]
        label = f"{scene.ref.name} scene {scene.number}"
        try:
            problem = next(filter(None, (scene_input_problem(decl.concept, scene.number, Path(image))
                                         for image in scene.images)), None)
            if problem:  # reported up front; nothing is sent for it
                raise InputError(problem)
            deps = dvcside.dep_values(stage)  # read before the job: a change from here on is noticed
            entry = inputs.setdefault(scene.ref, read_inputs(root, scene.ref)).get(scene.stage)
            job = _job(decl, scene, settings)
            if entry != _entry_of(job, settings):
                raise InputError(f"{scene.ref.inputs_file}: scene {scene.number} changed while s9 prepared it; "
                                 "run `s9 repro` again")
            if scene.address in takes:
                job = fresh_take(job)
        except S9Error as exc:  # e.g. a frame broken after registration: this scene only
            failed.append(SceneResult(label, scene.number, ok=False, error=str(exc)))
            continue
        jobs.append(job)
        prepared[label] = _Prepared(scene, stage, deps, entry, take=job.take > 0)
    backend = backend or get_backend(settings.backend, settings)
    finished: list[SceneResult] = []

    def collect(kind: str, scene_result: SceneResult) -> None:
        if kind == "done":
            finished.append(scene_result)
        if listener:
            listener(kind, scene_result)

    for item in failed:
        collect("done", item)
    try:
        if jobs:
            if not checked:
                backend.check()
            backend.preflight(jobs)  # again: the jobs were rebuilt after resolving (schemas are cached)
            for folder in {job.output.parent for job in jobs}:
                check_writable(folder)
        summary = run_jobs(jobs, backend, workers or settings.max_workers, collect)
    finally:
        # Even on Ctrl-C, what finished is recorded; what did not stays stale.
        _record(repo, root, settings, decls, stages, result, [prepared[r.label] for r in finished
                                                                 if r.ok and r.label in prepared])
        backend.close()
    summary.results = failed + summary.results
    result.summary = summary


def _entry_of(job: Job, settings: Settings) -> dict[str, Any]:
    """The inputs.json entry a job corresponds to (what `scene_inputs` writes for it)."""
    from ..backends import backend_identity
    from ..job import IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER

    return entry(job.model.id, settings.backend, backend_identity(settings.backend),
                 job.api_input(IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER))


def _record(repo: Repo, root: Path, settings: Settings, decls: list[ConceptDecl], stages: dict[str, PipelineStage],
            result: ReproResult, done: list[_Prepared]) -> None:
    """Lock entries for restored and generated scenes, one lock write per concept, then metrics."""
    recorded: dict[str, PipelineStage] = {}
    for address in result.restored:
        if dvcside.record(stages[address]):
            recorded[address] = stages[address]
    # The inputs as params.yaml and the step-7 files give them now: a scene whose entry changed while it ran
    # was made from what is no longer asked for.
    now: dict[ConceptRef, dict[str, Any]] = {}
    with contextlib.suppress(S9Error):
        fresh = project_settings(root)
        for ref in {item.decl.ref for item in done}:
            with contextlib.suppress(S9Error):
                now[ref] = scene_inputs(concept_decl(root, ref, fresh), fresh)
    for item in done:
        unchanged = now.get(item.decl.ref, {}).get(item.decl.stage) == item.entry
        if unchanged and dvcside.record(item.stage, expected_deps=item.deps, run_cache=not item.take):
            recorded[item.decl.address] = item.stage
        else:
            result.changed.append(item.decl.address)
    hashes: dict[str, str] = {}
    for decl in decls:
        mine = [stage for address, stage in recorded.items() if address.startswith(f"{decl.ref.dvc_file}:")]
        order = {s.stage: i for i, s in enumerate(decl.scenes)}
        dvcside.dump(sorted(mine, key=lambda stage: order.get(stage.name, 0)))
        for stage in mine:
            hashes.update(dvcside.file_hashes(stage))
        write_metrics(root, decl, settings)
    result.recorded = [a for d in decls for a in (s.address for s in d.scenes) if a in recorded]
    warm_hashes(root, hashes)


# -- the commands plain `dvc repro` runs ------------------------------------------------------------------
def resolve_stage(pipeline_dir: str | Path) -> Path:
    """`s9 resolve PIPELINE_DIR`: the `inputs` stage command."""
    root = find_root()
    path = run_resolve(root, pipeline_dir)
    ref = ConceptRef.from_pipeline_dir(pipeline_dir)
    settings = project_settings(root)
    write_metrics(root, concept_decl(root, ref, settings), settings)
    return path


def run_stage(pipeline_dir: str | Path, scene_number: int, clip: str | Path,
              listener: Listener | None = None) -> Summary:
    """`s9 stage PIPELINE_DIR N CLIP`: one scene, as `dvc repro` runs it (DVC holds its lock and has removed
    the outs). It refuses a clip name or an input entry that no longer matches params.yaml and data/."""
    root = find_root()
    ref = ConceptRef.from_pipeline_dir(pipeline_dir)
    settings = project_settings(root)
    decl = concept_decl(root, ref, settings)
    scene = decl.scene(scene_number)
    if Path(clip).as_posix() != scene.clip:
        raise InputError(f"{clip}: stage out does not match params.yaml (video_model {settings.video_model} "
                         f"writes {scene.clip}); run `s9 sync`, then repro again")
    entry = read_inputs(root, ref).get(scene.stage)
    with contextlib.chdir(root):
        job = _job(decl, scene, settings)
        if entry != _entry_of(job, settings):
            raise InputError(f"{ref.inputs_file}: scene {scene_number}'s entry is not what params.yaml and "
                             f"{ref.prompts} give now; run `dvc repro` (its `inputs` stage rewrites it)")
        backend = get_backend(settings.backend, settings)
        backend.check()
        backend.preflight([job])
        check_writable(job.output.parent)
        try:
            summary = run_jobs([job], backend, 1, listener)
        finally:
            backend.close()
        write_metrics(root, decl, settings)
    return summary
