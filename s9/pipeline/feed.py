"""Feed: the second half of `s9 repro`, one stale concept at a time, as the runner's workers free up.

For each concept the plan found stale (in order), as soon as the runner has a free worker: sync its pipeline
file, resolve its `inputs` stage, check it again, restore what DVC's cache or the default remote holds, and hand
the rest to the runner as jobs. Each scene is recorded the moment it finishes (with the dependency values read
when its job was built: a scene whose inputs changed meanwhile is not recorded), and a concept's lock is written
once its last scene is done. So a run holds the concepts in flight, not the repository, and a run that dies
leaves every finished scene recorded.

With a shard (`s9 repro --shard K/N`) nothing is written to dvc.lock or the metrics: each finished scene goes
to DVC's cache and run cache, and its outputs and run-cache entry are pushed to the default remote at once.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_text_atomic
from ..backends import Backend
from ..errors import InputError, S9Error
from ..job import Job
from ..params import PARAMS_FILE, Settings
from ..runner import Listener, SceneResult, check_writable
from ..takes import fresh_take
from . import dvcside
from .check import concept_status
from .declare import ConceptDecl, SceneDecl, outputs_dir, project_settings
from .hashing import stamp
from .layout import INPUTS_STAGE, ConceptRef
from .memo import ConceptState
from .plan import GENERATE, PULL, RESTORE
from .record import warm_hashes, write_metrics
from .register import SyncResult, sync_concept
from .resolve import concept_decl, entry_of, images_problem, job_for, read_inputs, render_inputs, scene_inputs

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


@dataclass
class Outcome:
    """What the feed did, by stage address (scenes) or concept name (`resolved`)."""

    restored: list[str] = field(default_factory=list)  # checked out from the cache / remote
    recorded: list[str] = field(default_factory=list)  # scene stages written to dvc.lock
    resolved: list[str] = field(default_factory=list)  # concepts whose `inputs` stage was re-recorded
    changed: list[str] = field(default_factory=list)  # generated, not recorded: an input changed meanwhile
    pushed: list[str] = field(default_factory=list)  # (shards) outputs and run-cache entry on the remote
    on_remote: list[str] = field(default_factory=list)  # (shards) already there: nothing to do
    unpushed: list[str] = field(default_factory=list)  # (shards) made, but the push failed


@dataclass
class _Prepared:
    decl: SceneDecl
    stage: PipelineStage
    deps: dict[str, Any]  # dependency values read when the job was built
    entry: dict[str, Any]  # the scene's input entry the job was built from
    take: bool = False  # a fresh take: recorded in dvc.lock, not in the run cache


@dataclass
class _Open:
    """A concept whose scenes are in flight."""

    decl: ConceptDecl
    waiting: set[str]  # labels of jobs not finished yet
    prepared: dict[str, _Prepared]  # by job label
    recorded: dict[str, PipelineStage] = field(default_factory=dict)  # by stage name, waiting for the lock write


class Feed:
    """Jobs for the runner (`jobs`), and the bookkeeping of what finishes (`drain`, in the calling thread)."""

    def __init__(self, repo: Repo, root: Path, settings: Settings, backend: Backend, how: dict[str, str],
                 listener: Listener | None = None, *, shard: bool = False, synced: SyncResult | None = None,
                 takes: frozenset[str] = frozenset()) -> None:
        self.repo = repo
        self.root = root
        self.settings = settings
        self.backend = backend
        self.how = how  # the plan's way for each stale scene (a scene it did not find is not looked for again)
        self.listener = listener
        self.shard = shard
        self.synced = synced
        self.takes = takes  # scenes to make again although nothing changed (`--new-take`)
        self.outcome = Outcome()
        self._open: dict[ConceptRef, _Open] = {}
        self._owner: dict[str, ConceptRef] = {}  # job label -> its concept, while in flight
        self._finished: queue.SimpleQueue[SceneResult] = queue.SimpleQueue()
        self._base = root / outputs_dir(settings, root)
        self._params: tuple[list[int] | None, Settings | None] = (None, None)
        self._closed = 0

    # -- what the runner calls ------------------------------------------------------------------------------
    def listen(self, kind: str, result: SceneResult) -> None:
        """The runner's listener (worker threads): passed on, and finished scenes queued for `drain`."""
        if self.listener:
            self.listener(kind, result)
        if kind == "done" and result.job is not None:
            self._finished.put(result)

    def jobs(self, refs: list[ConceptRef]) -> Iterator[Job | SceneResult]:
        for ref in refs:
            self.drain()
            yield from self._concept(ref)

    def drain(self) -> None:
        """Record what finished since the last call; write the lock of each concept whose last scene is done."""
        done: dict[ConceptRef, list[SceneResult]] = {}
        while True:
            try:
                result = self._finished.get_nowait()
            except queue.Empty:
                break
            ref = self._owner.pop(result.label, None)
            if ref is not None:
                done.setdefault(ref, []).append(result)
        if not done:
            return
        fresh = self._settings_now()
        for ref, results in done.items():
            self._record(self._open[ref], results, fresh)

    def _settings_now(self) -> Settings | None:
        """params.yaml's settings as they are now (None when it cannot be read), parsed again only when the
        file changed."""
        path = self.root / PARAMS_FILE
        with contextlib.suppress(OSError):
            now = stamp(path.stat())
            if self._params[0] != now:
                try:
                    self._params = (now, project_settings(self.root))
                except S9Error:
                    self._params = (now, None)
            return self._params[1]
        return None

    def close(self) -> None:
        """After the run (or Ctrl-C): record what finished; what did not stays stale."""
        self.drain()
        for ref in list(self._open):
            self._close(self._open.pop(ref))

    # -- one concept ----------------------------------------------------------------------------------------
    def _concept(self, ref: ConceptRef) -> Iterator[Job | SceneResult]:
        settings, root = self.settings, self.root
        decl = concept_decl(root, ref, settings)
        if not self.shard:
            sync_concept(root, self.repo, decl, self.synced or SyncResult(settings), self._base)
        load = dvcside.stage_loader(self.repo, ref.dvc_file)  # after the sync: dvc.yaml as it stays
        if self._resolve(decl, load([INPUTS_STAGE])[INPUTS_STAGE]):
            self.outcome.resolved.append(ref.name)
        decl = concept_decl(root, ref, settings)  # the step-7 file the inputs were resolved from
        status = concept_status(root, settings, decl)
        stale_now = {s.decl.address for s in status.stale_scenes}
        stale = [s for s in decl.scenes if s.address in stale_now or s.address in self.takes]
        # Their lock entries as parsed before the inputs stage was recorded: recording it changed only its own.
        stages = load([s.stage for s in stale]) if stale else {}
        opened = _Open(decl, set(), {})
        pending: list[SceneDecl] = []
        for scene in stale:
            how = self.how.get(scene.address, RESTORE)
            if self.shard and (how == PULL or (how == RESTORE and self._on_remote(stages[scene.stage]))):
                self.outcome.on_remote.append(scene.address)  # an earlier run put it there: nothing to do
                continue
            if how != GENERATE and dvcside.restore(stages[scene.stage], pull=how == PULL):
                self.outcome.restored.append(scene.address)
                self._keep(opened, stages[scene.stage], scene.address, restored=True)
            else:
                pending.append(scene)
        self._open[ref] = opened  # before its first job goes out: `drain` may record it meanwhile
        yield from self._jobs(opened, pending, stages)
        if not opened.waiting and self._open.get(ref) is opened:  # nothing in flight (or all done already)
            del self._open[ref]
            self._close(opened)

    def _on_remote(self, stage: PipelineStage) -> bool:
        """(Shards) whether the run for the stage's current inputs, and its outputs, are on the remote."""
        try:
            dvcside.dep_values(stage)
        except S9Error:
            return False
        found = dvcside.remote_run_cache_entry(self.repo, stage)
        return found is not None and dvcside.entry_on_remote(self.repo, found)

    def _jobs(self, opened: _Open, pending: list[SceneDecl], stages: dict[str, PipelineStage]) -> Iterator[
            Job | SceneResult]:
        decl, settings = opened.decl, self.settings
        inputs = read_inputs(self.root, decl.ref) if pending else {}
        jobs: list[tuple[Job, _Prepared]] = []
        for scene in pending:
            label = f"{scene.ref.name} scene {scene.number}"
            try:
                problem = images_problem(decl, scene)
                if problem:  # reported up front; nothing is sent for it
                    raise InputError(problem)
                stage = stages[scene.stage]
                deps = dvcside.dep_values(stage)  # read before the job: a change from here on is noticed
                job = job_for(decl, scene, settings)
                if scene.address in self.takes:
                    job = fresh_take(job)
                if inputs.get(scene.stage) != entry_of(job, settings):
                    raise InputError(f"{scene.ref.inputs_file}: scene {scene.number} changed while s9 prepared it; "
                                     "run `s9 repro` again")
            except S9Error as exc:  # e.g. a frame broken after registration: this scene only
                yield SceneResult(label, scene.number, ok=False, error=str(exc))
                continue
            jobs.append((job, _Prepared(scene, stage, deps, inputs[scene.stage], take=job.take > 0)))
        if not jobs:
            return
        try:
            # Again: the jobs were rebuilt after resolving (schemas are cached); and the folder must be writable.
            self.backend.preflight([job for job, _ in jobs])
            check_writable(jobs[0][0].output.parent)
        except S9Error as exc:
            for job, _ in jobs:
                yield SceneResult(job.label, job.scene.number, ok=False, error=str(exc))
            return
        for job, prepared in jobs:
            opened.waiting.add(job.label)
            opened.prepared[job.label] = prepared
            self._owner[job.label] = decl.ref
        for job, _ in jobs:
            yield job

    def _resolve(self, decl: ConceptDecl, stage: PipelineStage) -> bool:
        """What the `inputs` stage does, in process: write inputs.json and record the stage, when it is stale.
        Its deps are read first and again when recording: a step-7 file edited meanwhile is not recorded. A
        shard writes inputs.json (the scene stages' params are read from it) but records nothing."""
        ref = decl.ref
        before = dvcside.dep_values(stage)
        text = render_inputs(scene_inputs(decl, self.settings))
        current = self.root / ref.inputs_file
        if not current.is_file() or current.read_text(encoding="utf-8") != text:
            write_text_atomic(current, text)
        elif not stage.changed():
            return False
        if self.shard or not dvcside.record(stage, expected_deps=before):
            return False
        dvcside.dump([stage])
        warm_hashes(self.root, ref, dvcside.file_hashes(stage))
        return True

    # -- recording ------------------------------------------------------------------------------------------
    def _record(self, opened: _Open, results: list[SceneResult], fresh: Settings | None) -> None:
        """Record the scenes of one concept that just finished; close the concept when none is left."""
        decl = opened.decl
        # The inputs as params.yaml and the step-7 file give them now: a scene whose entry changed while it ran
        # was made from what is no longer asked for.
        now: dict[str, Any] = {}
        if fresh is not None:
            with contextlib.suppress(S9Error):
                now = scene_inputs(concept_decl(self.root, decl.ref, fresh), fresh)
        for result in results:
            opened.waiting.discard(result.label)
            item = opened.prepared.pop(result.label, None)
            if item is None or not result.ok:
                continue
            unchanged = now.get(item.decl.stage) == item.entry
            if unchanged and dvcside.record(item.stage, expected_deps=item.deps, run_cache=not item.take):
                self._keep(opened, item.stage, item.decl.address)
            else:
                self.outcome.changed.append(item.decl.address)
        if not opened.waiting:
            self._open.pop(decl.ref, None)
            self._close(opened)

    def _keep(self, opened: _Open, stage: PipelineStage, address: str, restored: bool = False) -> None:
        """A scene brought up to date (generated and recorded, or `restored`, which is recorded here as `dvc
        repro` records it): a shard pushes it now; otherwise it waits for its concept's lock write."""
        if restored and not dvcside.record(stage):
            return
        if not self.shard:
            opened.recorded[stage.name] = stage
            return
        if dvcside.push_scene(self.repo, stage):
            self.outcome.pushed.append(address)
        else:
            self.outcome.unpushed.append(address)

    def _close(self, opened: _Open) -> None:
        """One lock write for the concept's recorded scenes (in pipeline order), its metrics, warm hashes."""
        self._closed += 1
        if self._closed % 50 == 0:
            dvcside.forget_walked(self.repo)
        if self.shard:
            return
        decl = opened.decl
        order = {s.stage: i for i, s in enumerate(decl.scenes)}
        stages = sorted(opened.recorded.values(), key=lambda stage: order.get(stage.name, 0))
        dvcside.dump(stages)
        hashes: dict[str, str] = {}
        for stage in stages:
            hashes.update(dvcside.file_hashes(stage))
        warm_hashes(self.root, decl.ref, hashes)
        write_metrics(self.root, decl, self.settings)
        self.outcome.recorded += [s.address for s in decl.scenes if s.stage in opened.recorded]
        self._remember(decl)

    def _remember(self, decl: ConceptDecl) -> None:
        """Check the concept once more now that its lock is written (every hash is warm: it costs a few stats
        per scene), so the first `s9 status` after the run finds its memo. Under the settings of now; a
        params.yaml that changed during the check leaves no memo."""
        before = self._settings_now()
        if before is None:
            return
        with contextlib.suppress(S9Error):
            concept_status(self.root, before, concept_decl(self.root, decl.ref, before))
            if self._settings_now() is not before:
                ConceptState(self.root, decl.ref).forget_fresh_now()
