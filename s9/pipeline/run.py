"""Run: bring stale scenes up to date, in parallel in one process (`s9 repro`), or one stage at a time as the
commands plain `dvc repro` runs (`s9 resolve`, `s9 stage`).

`s9 repro` takes DVC's repo lock first and holds it throughout, as `dvc repro` does. It checks and plans one
concept at a time (nothing is written if the plan is over budget), checks every job it will pay for against
the model's schema, and then (`s9.pipeline.feed`) syncs, resolves, restores and generates concept after
concept as workers free up, recording each scene with the dependency values read when its job was built: a
scene whose inputs changed while it ran is not recorded (it stays stale, and the summary says so). A failed
scene is never recorded. What it holds in memory is the plan and the concepts in flight, not the repository.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends import Backend, get_backend
from ..errors import InputError
from ..job import Job
from ..runner import Listener, SceneResult, Summary, check_writable, run_jobs, run_stream
from . import dvcside
from .check import compute_status, orphan_pipelines, walk_status
from .declare import concept_refs, project_settings, root_pipeline_problem
from .feed import Feed, Outcome
from .layout import ConceptRef, find_root
from .plan import PULL, Plan, Tally, make_plan, plan_concept
from .record import write_metrics
from .register import sync_root_locked
from .resolve import concept_decl, entry_of, job_for, read_inputs, run_resolve
from .shard import JournalMirror, Shard
from .verdict import REPRO, Reason, StatusReport

if TYPE_CHECKING:
    from dvc.repo import Repo

    from ..params import Settings


@dataclass
class ReproResult:
    plan: Tally  # what the run planned: each stale scene's way, and the totals
    summary: Summary  # generated scenes (restored ones are not in it)
    restored: list[str] = field(default_factory=list)  # stage addresses checked out from the cache / remote
    recorded: list[str] = field(default_factory=list)  # scene stages written to dvc.lock
    resolved: list[str] = field(default_factory=list)  # concepts whose `inputs` stage was re-recorded
    changed: list[str] = field(default_factory=list)  # generated, not recorded: an input changed meanwhile
    shard: Shard | None = None
    pushed: list[str] = field(default_factory=list)  # (shards) outputs and run-cache entry pushed
    on_remote: list[str] = field(default_factory=list)  # (shards) already on the remote: skipped
    unpushed: list[str] = field(default_factory=list)  # (shards) made here, but not on the remote
    journal_unmirrored: int = 0  # (shards) journal entries that could not be mirrored on the remote

    @property
    def ok(self) -> bool:
        return self.summary.ok and not self.changed and not self.unpushed


def status(root: Path, targets: list[str] | None = None, *, outputs: bool = True) -> StatusReport:
    """`s9 status`: which scenes are stale and why. Writes nothing git tracks."""
    return compute_status(Path(root).resolve(), targets, outputs=outputs)


def plan(root: Path, targets: list[str] | None = None, *, pull: bool = True, new_take: bool = False) -> Plan:
    """`s9 plan`: what a repro would restore, pull or generate, and the cost; writes and downloads nothing.
    `new_take`: the targets' scenes as fresh takes (generated, and priced, even when up to date)."""
    root = Path(root).resolve()
    with contextlib.chdir(root):
        settings = project_settings(root)
        report = compute_status(root, targets, settings=settings, every=new_take)
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
          shard: Shard | None = None, new_take: bool = False) -> ReproResult:
    """Bring every stale scene (or the targets', or a shard's) up to date, leaving the locks as `dvc repro`
    would (a shard leaves them alone and pushes to the default remote instead). `new_take`: also make a fresh
    take of every scene the targets name (see `s9.takes`)."""
    root = Path(root).resolve()
    with contextlib.chdir(root), dvcside.open_repo(root, lock=True) as repo:
        return repro_locked(repo, root, targets, workers=workers, listener=listener, backend=backend, pull=pull,
                            shard=shard, new_take=new_take)


def repro_locked(repo: Repo, root: Path, targets: list[str] | None = None, *, workers: int | None = None,
                 listener: Listener | None = None, backend: Backend | None = None, pull: bool = True,
                 shard: Shard | None = None, new_take: bool = False) -> ReproResult:
    """`repro` for a caller that already holds DVC's repo lock, with the working directory at the root."""
    settings = project_settings(root)
    root_pipeline_problem(root)  # a root dvc.yaml DVC cannot read is refused before anything else
    if shard is not None and dvcside.default_remote(repo) is None:
        raise InputError("--shard needs a default DVC remote to share the results through "
                         "(`dvc remote add -d NAME URL`)")
    remote = (pull or shard is not None) and dvcside.default_remote(repo) is not None
    # Pass 1: check and plan, one concept at a time, keeping the plan's tally and the stale concepts' names only.
    report = StatusReport([])
    tally, todo = Tally(settings.max_spend_usd), []
    takes: frozenset[str] = frozenset()
    if new_take:  # a few named scenes, fresh or not: checked in full
        full = compute_status(root, targets, settings=settings, every=True)
        takes = take_addresses(full, targets)
        concepts = iter(with_takes(full, takes).concepts)
    else:
        concepts = walk_status(root, settings, report, targets, owns=shard.owns if shard else None)
    for concept in concepts:
        if not concept.stale:
            continue
        if shard is not None and any(r.kind == "pipeline" for r in concept.reasons):
            raise InputError(f"{concept.decl.ref.dvc_file}: {concept.reasons[0].message.split(' (`')[0]}; a shard "
                             "changes nothing git tracks: run `s9 sync`, commit, and run the shards on that commit")
        tally.add(plan_concept(root, concept, settings, repo, remote=remote, generate=takes))
        todo.append(concept.decl.ref)
    orphans = [] if targets or shard else orphan_pipelines(root, concept_refs(root))
    result = ReproResult(tally, Summary([], 0.0, 0), shard=shard)
    if not todo and not orphans:
        return result
    if tally.over_budget:
        raise tally.budget_error()
    backend = backend or get_backend(settings.backend, settings)
    fingerprints = _preflight(backend, root, todo, tally, settings)
    mirror = None
    journal = getattr(backend, "journal", None)
    if shard is not None and journal is not None:
        mirror = JournalMirror(repo)
        mirror.pull(journal, fingerprints)
        journal.on_record = mirror.push
    synced = None if shard else sync_root_locked(root, repo, settings)
    if shard is None and any(h == PULL for h in tally.how.values()):
        dvcside.pull_run_cache(repo)
    feed = Feed(repo, root, settings, backend, tally.how, listener, shard=shard is not None, synced=synced, takes=takes)
    try:
        coming = (SceneResult(f"{name} scene {number}", number, ok=False) for _, name, number in tally.generating)
        result.summary = run_stream(feed.jobs(todo), backend, workers or settings.max_workers, feed.listen,
                                    between=feed.drain, queued=coming)
    finally:
        # Even on Ctrl-C, what finished is recorded (or pushed); what did not stays stale.
        feed.close()
        backend.close()
        if journal is not None and mirror is not None:
            journal.on_record = None
            result.journal_unmirrored = mirror.failed
    _take(result, feed.outcome)
    return result


def _take(result: ReproResult, outcome: Outcome) -> None:
    result.restored, result.recorded, result.resolved = outcome.restored, outcome.recorded, outcome.resolved
    result.changed, result.pushed, result.on_remote = outcome.changed, outcome.pushed, outcome.on_remote
    result.unpushed = outcome.unpushed


def _preflight(backend: Backend, root: Path, refs: list[ConceptRef], tally: Tally, settings: Settings) -> set[str]:
    """Before anything is written: the token, and every job the plan generates against the model's schema, a
    concept at a time. The fingerprints of those jobs (what the journal knows them by)."""
    wanted = {address for address, _, _ in tally.generating}
    fingerprints: set[str] = set()
    checked = False
    for ref in refs:
        decl = concept_decl(root, ref, settings)
        jobs: list[Job] = [job_for(decl, s, settings) for s in decl.scenes if s.address in wanted]
        if not jobs:
            continue
        if not checked:
            backend.check()
            checked = True
        backend.preflight(jobs)
        fingerprints.update(job.fingerprint for job in jobs)
    return fingerprints


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
        job = job_for(decl, scene, settings)
        if entry != entry_of(job, settings):
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
