"""Registering concepts: `s9 add`, `s9 remove`, `s9 sync`. Every one takes DVC's repo lock before it touches
anything, computes (and so validates) everything it will write first, and then writes it.

`sync` makes the pipelines match data/ and params.yaml: a concept's dvc.yaml is rewritten when its scenes or
clip names changed, the pipelines of removed concepts go, lock entries of stages that no longer exist are
pruned, and clips and debug folders no stage declares any more leave the outputs folder when DVC's cache
holds them (so switching the model back restores them without paying).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_text_atomic
from ..errors import InputError
from ..job import FIRST_FRAME_PATTERN, check_image, infer_batch
from ..params import PARAMS_FILE, Settings
from ..scenes import Concept, check_batch_name, check_concept_name, load_concept
from ..yamlio import expect_mapping, parse_yaml, read_yaml
from . import dvcside
from .check import orphan_pipelines
from .declare import ConceptDecl, concept_refs, declare, project_settings, template_text
from .layout import DVC_FILE, FRAMES_ROOT, LOCK_FILE, PROMPTS_ROOT, ConceptRef
from .lockfile import prune_lock, read_lock
from .memo import ConceptState, forget

if TYPE_CHECKING:
    from dvc.repo import Repo

OLD_VARS_FILE = "s9_scenes.yaml"  # the single-pipeline layout of s9 0.1, migrated by `sync`


@dataclass
class SyncResult:
    settings: Settings
    concepts: int = 0  # concepts whose pipelines were checked
    scenes: int = 0  # their scene stages
    written: list[str] = field(default_factory=list)  # pipeline files (re)written
    removed: list[str] = field(default_factory=list)  # pipeline folders of concepts no longer registered
    pruned: list[str] = field(default_factory=list)  # lock entries of stages that no longer exist
    tidied: list[str] = field(default_factory=list)  # undeclared clips / debug folders removed (cached)
    kept: list[str] = field(default_factory=list)  # undeclared files kept: not in DVC's cache
    migrated: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed or self.pruned or self.tidied or self.migrated)


@contextmanager
def locked_repo(root: Path) -> Iterator[Repo]:
    """DVC's repo lock, taken before anything is read for writing; `InputError` (exit 2) when busy."""
    with dvcside.open_repo(root, lock=True) as repo:
        yield repo


def _check_root_pipeline(root: Path) -> str | None:
    """What to do with the root dvc.yaml: 'write' (missing), 'migrate' (the 0.1 layout), or None (keep)."""
    path = root / DVC_FILE
    if not path.exists():
        return "write"
    data = expect_mapping(read_yaml(path, parse_yaml), path, "the top level")
    listed = data.get("vars") or []
    if isinstance(listed, list) and OLD_VARS_FILE in listed:
        return "migrate"
    expect_mapping(data.get("stages"), path, "`stages`")  # DVC would refuse every command otherwise
    return None


def _migrate(root: Path) -> None:
    """s9 0.1 kept every scene in one foreach stage of the root dvc.yaml: the root pipeline becomes stage-less
    and its scene entries leave the root dvc.lock (each concept now has its own pipeline and lock)."""
    write_text_atomic(root / DVC_FILE, template_text(DVC_FILE))
    (root / OLD_VARS_FILE).unlink(missing_ok=True)
    lock = root / LOCK_FILE
    if lock.exists():
        stages = read_lock(root, LOCK_FILE)
        if all(name.startswith("scene@") for name in stages):
            lock.unlink()
        else:
            prune_lock(root, LOCK_FILE, {n for n in stages if not n.startswith("scene@")})


@dataclass(frozen=True)
class _Pending:
    """Everything a scoped sync (`add`, `remove`) will write, computed (and so validated) before anything is
    written."""

    root_action: str | None
    settings: Settings
    decls: list[ConceptDecl]  # the concepts the sync writes
    gone: list[ConceptRef]  # concepts whose pipeline and outputs go


def _prepare(root: Path, settings: Settings | None, concepts: list[tuple[ConceptRef, Concept]],
             gone: list[ConceptRef] | None = None) -> _Pending:
    root_action = _check_root_pipeline(root)
    settings = settings or project_settings(root)
    decls = declare(root, settings, concepts)
    for decl in decls:
        read_lock(root, decl.ref.lock_file)  # a broken lock (a merge conflict, say) is reported before any write
    return _Pending(root_action, settings, decls, gone or [])


def sync_locked(root: Path, repo: Repo, settings: Settings | None = None, *, tidy: bool = True,
                pending: _Pending | None = None) -> SyncResult:
    """Bring the pipeline files in line with data/ and params.yaml (every concept's, or only those `pending`
    names); the caller holds the lock. With `tidy`, outputs no stage declares leave the outputs folder when
    DVC's cache holds them.

    Everything is validated before anything is written: every concept's step-7 file and lock are read in a
    first pass (one concept at a time, so memory does not grow with the repository), then written in a second.
    """
    from .declare import iter_declared, outputs_dir

    if pending is not None:
        result = _sync_root(root, repo, pending.root_action, pending.settings, tidy, gone=pending.gone)
        base = root / outputs_dir(pending.settings, root)
        for decl in pending.decls:
            sync_concept(root, repo, decl, result, base if tidy else None)
        return result
    root_action = _check_root_pipeline(root)
    settings = settings or project_settings(root)
    for decl in iter_declared(root, settings):
        read_lock(root, decl.ref.lock_file)  # a broken lock (a merge conflict, say) is reported before any write
    result = _sync_root(root, repo, root_action, settings, tidy)
    base = root / outputs_dir(settings, root)
    for decl in iter_declared(root, settings):
        sync_concept(root, repo, decl, result, base if tidy else None)
    return result


def sync_root_locked(root: Path, repo: Repo, settings: Settings) -> SyncResult:
    """What a sync does besides each registered concept's own files (the root dvc.yaml, params.yaml, pipelines
    and outputs of concepts no longer registered): `s9 repro` then syncs the concepts it visits one by one."""
    return _sync_root(root, repo, _check_root_pipeline(root), settings, tidy=True)


def _sync_root(root: Path, repo: Repo, root_action: str | None, settings: Settings, tidy: bool,
               gone: list[ConceptRef] | None = None) -> SyncResult:
    """The root dvc.yaml and params.yaml; the pipelines and (with `tidy`) outputs of concepts no longer
    registered: `gone` names them (a scoped sync), else every one found."""
    from .declare import outputs_dir

    result = SyncResult(settings)
    if root_action == "migrate":
        _migrate(root)
        result.migrated = True
    elif root_action == "write":
        write_text_atomic(root / DVC_FILE, template_text(DVC_FILE))
        result.written.append(DVC_FILE)
    if not (root / PARAMS_FILE).exists():
        write_text_atomic(root / PARAMS_FILE, template_text(PARAMS_FILE))
        result.written.append(PARAMS_FILE)
    known = concept_refs(root) if gone is None else []
    if gone is None:
        orphans = orphan_pipelines(root, known)
    else:
        orphans = [ref.pipeline_dir.as_posix() for ref in gone if (root / ref.pipeline_dir).is_dir()]
    for folder in orphans:
        shutil.rmtree(root / folder)
        forget(root, ConceptRef.from_pipeline_dir(folder))
        result.removed.append(folder)
    if tidy:  # the outputs folders of concepts that are not registered any more
        base = root / outputs_dir(settings, root)
        if gone is None:
            names = {(ref.batch, ref.name) for ref in known}
            batches = sorted(b for b in base.iterdir() if b.is_dir()) if base.is_dir() else []
            strays = [c for b in batches for c in sorted(b.iterdir()) if (b.name, c.name) not in names]
        else:
            strays = [base / r.batch / r.name for r in gone]
        for folder in strays:
            _tidy_outputs(root, repo, folder, ConceptRef(folder.parent.name, folder.name), set(), result)
    return result


def sync_concept(root: Path, repo: Repo, decl: ConceptDecl, result: SyncResult, base: Path | None) -> None:
    """One concept: its dvc.yaml as declared, lock entries of removed scenes pruned, (with `base`, the outputs
    folder) its outputs tidied."""
    result.concepts += 1
    result.scenes += len(decl.scenes)
    text = decl.render()
    path = root / decl.ref.dvc_file
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
        result.written.append(decl.ref.dvc_file.as_posix())
    keep = {"inputs", *(s.stage for s in decl.scenes)}
    result.pruned += [decl.ref.address(n) for n in prune_lock(root, decl.ref.lock_file, keep)]
    if base is not None:
        declared = {Path(p) for s in decl.scenes for p in s.outs}
        _tidy_outputs(root, repo, base / decl.ref.batch / decl.ref.name, decl.ref, declared, result)


def sync(root: Path) -> SyncResult:
    """`s9 sync`: under DVC's repo lock, make the pipelines match data/ and params.yaml."""
    root = Path(root).resolve()
    with locked_repo(root) as repo:
        return sync_locked(root, repo)


def _tidy_outputs(root: Path, repo: Repo, concept: Path, ref: ConceptRef, declared: set[Path],
                  result: SyncResult) -> None:
    """Undeclared clips and debug folders in one concept's outputs folder go when DVC's cache holds them; the
    others are kept and reported."""
    if not concept.is_dir():
        return
    candidates = [p for p in concept.iterdir() if p.suffix == ".mp4"]
    if (concept / "debug").is_dir():
        candidates += [p for p in (concept / "debug").iterdir() if p.is_dir() and p.name.startswith("scene_")]
    todo = [path for path in sorted(candidates) if path.relative_to(root) not in declared]
    if not todo:
        return
    state = ConceptState(root, ref)
    for path in todo:
        rel = path.relative_to(root)
        md5 = state.hashes.dir_hash(path).md5 if path.is_dir() else state.hashes.md5(path)
        if dvcside.cached(repo, md5):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            dvcside.ignore_remove(repo, path)
            result.tidied.append(rel.as_posix())
        else:
            result.kept.append(rel.as_posix())
    state.save()


# -- add / remove ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddResult:
    concept: str
    batch: str
    scenes: int
    sync: SyncResult


def add_concept(root: Path, prompts: Path, frames_dir: Path, batch: str | None = None) -> AddResult:
    """Copy a concept's step-7 file and step-8 frames into data/ and write its pipeline (under the repo lock).

    Everything is checked before anything is written: an `InputError` leaves the repo as it was."""
    root = Path(root).resolve()
    with locked_repo(root) as repo:
        settings = project_settings(root)
        concept = load_concept(prompts)
        batch = check_batch_name(batch or infer_batch(Path(prompts), concept.name) or settings.batch, "--batch")
        frames_dir = Path(frames_dir)
        if not frames_dir.is_dir():
            raise InputError(f"{frames_dir}: first frames folder not found")
        frames, missing = {}, []
        for scene in concept.scenes:
            frame = frames_dir / FIRST_FRAME_PATTERN.format(concept=concept.name, n=scene.number)
            if not frame.is_file():
                missing.append(frame.name)
                continue
            check_image(frame, scene.number)
            frames[scene.number] = frame
        if missing:
            raise InputError(f"{frames_dir}: first frames missing for {concept.name}: {', '.join(missing)}")
        for other in sorted((root / PROMPTS_ROOT).glob(f"*/{concept.name}")):
            if other.parent.name != batch:
                raise InputError(f"concept {concept.name!r} is already registered in batch {other.parent.name!r}; "
                                 f"`s9 remove {concept.name}` first or add it with --batch {other.parent.name}")
        new = ConceptRef(batch, concept.name)
        # Only this concept's pipeline is written: adding one costs the same in a repo of any size.
        pending = _prepare(root, settings, [(new, replace(concept, prompts_path=new.prompts))])
        (root / new.prompts).parent.mkdir(parents=True, exist_ok=True)
        (root / new.frames_dir).mkdir(parents=True, exist_ok=True)
        _copy(Path(prompts), root / new.prompts)
        wanted = set()
        for number, frame in frames.items():
            target = root / new.frame(number)
            wanted.add(target.name)
            _copy(frame, target)
        # Frames of scenes the new prompts file no longer has would only confuse the next reader.
        for old in (root / new.frames_dir).glob(FIRST_FRAME_PATTERN.format(concept=concept.name, n="*")):
            if old.name not in wanted:
                old.unlink()
        result = sync_locked(root, repo, pending=pending)
        return AddResult(concept.name, batch, len(concept.scenes), result)


def _copy(src: Path, dest: Path) -> None:
    if src.resolve() == dest.resolve():
        return
    if dest.exists() and dest.read_bytes() == src.read_bytes():
        return  # keep mtimes, so hash caches stay warm
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)


@dataclass(frozen=True)
class RemoveResult:
    concept: str
    batch: str
    removed_outputs: bool
    sync: SyncResult


def remove_concept(root: Path, concept: str, *, outputs: bool = False) -> RemoveResult:
    """Unregister a concept under the repo lock: its data/ files and pipeline go, and its clips leave the
    outputs folder when DVC's cache holds them (with `outputs`, even when it does not)."""
    root = Path(root).resolve()
    check_concept_name(concept, "concept")
    with locked_repo(root) as repo:
        found = sorted((root / PROMPTS_ROOT).glob(f"*/{concept}"))
        if not found:
            raise InputError(f"concept {concept!r} is not registered (nothing under {PROMPTS_ROOT}/*/{concept})")
        ref = ConceptRef(found[0].parent.name, concept)
        settings = project_settings(root)
        pending = _prepare(root, settings, [], gone=[ref])  # validates everything before anything is deleted
        shutil.rmtree(root / PROMPTS_ROOT / ref.batch / ref.name)
        shutil.rmtree(root / FRAMES_ROOT / ref.batch / ref.name, ignore_errors=True)
        if outputs:
            from .declare import outputs_dir

            shutil.rmtree(root / outputs_dir(settings, root) / ref.batch / ref.name, ignore_errors=True)
        result = sync_locked(root, repo, pending=pending)
        forget(root, ref)
        return RemoveResult(concept, ref.batch, outputs, result)
