"""Check: which scenes are stale and why, and what fixes each one, without writing anything git tracks.

Each concept's expected pipeline and scene inputs are computed in memory from data/ and params.yaml and
compared with its dvc.lock, the way `dvc status` compares (params values with `!=`, files by DVC's md5 from a
stat-keyed cache). s9 sees one step further than `dvc status`: after a prompt edit DVC reports the concept's
`inputs` stage, s9 reports the scene whose input that edit changes, with the field.

Concepts are checked one at a time and only those with something to report are kept, so the memory a check
takes does not grow with the repository; a concept whose files have not changed since it was last found up to
date is not checked again (its memo, `s9.pipeline.memo`), so a no-op status stats a few files per scene.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import InputError
from ..params import CLIP_PARAMS, PARAMS_FILE, Settings
from ..yamlio import read_yaml
from .declare import ConceptDecl, SceneDecl, concept_refs, declare, load_registered, project_settings
from .hashing import stamp
from .layout import DVC_FILE, INPUTS_STAGE, PIPELINES_ROOT, ConceptRef
from .memo import ConceptState, memo_key
from .resolve import changed_fields, pipeline_drift, render_inputs, scene_inputs
from .verdict import CHECKOUT, PULL, REPRO, ConceptStatus, Reason, SceneStatus, StatusReport


def select(decls: list[ConceptDecl], targets: list[str] | None) -> tuple[list[ConceptDecl], set[str] | None]:
    """The concepts targets touch and, when targets name single scenes, those scenes' addresses.

    A target is a concept name, a scene (`tiny_p1`), a DVC stage address (`pipelines/b1/tiny/dvc.yaml:p1`)
    or a concept's pipeline file; none means everything."""
    if not targets:
        return decls, None
    concepts: dict[ConceptRef, ConceptDecl] = {}
    scenes: set[str] = set()
    whole: set[ConceptRef] = set()
    for target in targets:
        hit = False
        for decl in decls:
            if target in (decl.ref.name, decl.ref.dvc_file.as_posix(), decl.ref.pipeline_dir.as_posix()):
                concepts[decl.ref], hit = decl, True
                whole.add(decl.ref)
                continue
            for scene in decl.scenes:
                if target in (scene.key, scene.address):
                    concepts[decl.ref], hit = decl, True
                    scenes.add(scene.address)
        if not hit:
            raise InputError(f"{target}: no such concept or scene stage (targets: a concept, a scene like "
                             "tiny_p1, or a stage like pipelines/b1/tiny/dvc.yaml:p1)")
    chosen = [d for d in decls if d.ref in concepts]
    if whole:
        scenes |= {s.address for d in chosen if d.ref in whole for s in d.scenes}
    return chosen, scenes


def _config(root: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if path.exists():
            try:
                parser.read(path, encoding="utf-8")
            except configparser.Error:
                continue
    return parser


def dvc_cache_dir(root: Path) -> Path:
    """Where DVC keeps objects: `cache.dir` from .dvc/config(.local) when set, else .dvc/cache."""
    config = _config(root)
    found = root / ".dvc" / "cache"
    if config.has_option("cache", "dir"):
        value = Path(config.get("cache", "dir").strip().strip("'\""))
        found = value if value.is_absolute() else (root / ".dvc" / value).resolve()
    return found / "files" / "md5"


def has_remote(root: Path) -> bool:
    config = _config(root)
    return config.has_option("core", "remote") and bool(config.get("core", "remote").strip().strip("'\""))


class _Checker:
    def __init__(self, root: Path, settings: Settings, outputs: bool) -> None:
        self.root = root
        self.settings = settings
        self.outputs = outputs
        self.cache = dvc_cache_dir(root)
        self.remote = has_remote(root)
        params_path = root / PARAMS_FILE
        self.params = (read_yaml(params_path) or {}) if params_path.exists() else {}
        self.key = memo_key(root, params_path.read_bytes() if params_path.exists() else b"", self.cache)
        self.state: ConceptState | None = None
        self.extra: dict[str, list[int] | bool | None] = {}  # stamps of what was read besides hashed files

    def md5(self, rel: str) -> str | None:
        assert self.state is not None
        full = self.root / rel
        if full.is_dir():
            return self.state.hashes.dir_hash(full).md5
        if full.is_file():
            return self.state.hashes.md5(full)
        self.extra[rel] = None
        return None

    def _stamp(self, rel: Path | str) -> None:
        try:
            self.extra[Path(rel).as_posix()] = stamp(os.stat(self.root / rel))
        except OSError:
            self.extra[Path(rel).as_posix()] = None

    def _exists(self, path: Path) -> bool:
        found = path.exists()
        self.extra[os.path.relpath(path, self.root)] = True if found else None
        return found

    def in_cache(self, md5: str) -> bool:
        import json

        obj = self.cache / md5[:2] / md5[2:]
        if not md5.endswith(".dir"):
            return self._exists(obj)
        try:
            listing = json.loads(obj.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        self.extra[os.path.relpath(obj, self.root)] = True
        return all(self._exists(self.cache / e["md5"][:2] / e["md5"][2:]) for e in listing)

    def concept(self, decl: ConceptDecl, wanted: set[str] | None, state: ConceptState) -> ConceptStatus:
        """The concept's status; when all of it was checked and it is clean, its memo is remembered."""
        self.state, self.extra = state, {}
        state.watch()
        status = ConceptStatus(decl)
        self._stamp(decl.ref.dvc_file)
        drift = pipeline_drift(decl, self.root)
        if drift:
            status.reasons.append(Reason("pipeline", f"{drift} (`s9 sync`; `s9 repro` does it)"))
        lock = state.lock_stages()
        expected = scene_inputs(decl, self.settings)
        status.reasons += self._inputs_stage(decl, lock.get(INPUTS_STAGE), expected)
        commands = decl.commands()
        for scene in decl.scenes:
            if wanted is None or scene.address in wanted:
                status.scenes.append(self._scene(decl, scene, lock.get(scene.stage), expected[scene.stage],
                                                 commands[scene.stage]))
        if wanted is not None and len(status.scenes) < len(decl.scenes):
            status.reasons = []  # single scenes were asked about: the concept's own stage is not theirs
        status.leftovers = self._leftovers(decl)
        if wanted is None and not status.stale and not status.leftovers:
            state.remember_fresh(self.key, self.outputs, len(decl.scenes), self.extra)
        elif wanted is None:
            state.forget_fresh()
        self.state = None
        return status

    def _inputs_stage(self, decl: ConceptDecl, locked: dict | None, expected: dict) -> list[Reason]:
        if locked is None:
            return [Reason("inputs", f"{INPUTS_STAGE} stage never ran (no {decl.ref.lock_file} entry)")]
        changes = []
        deps = {d.get("path"): d.get("md5") for d in locked.get("deps") or []}
        if deps.get(decl.ref.prompts.as_posix()) != self.md5(decl.ref.prompts.as_posix()):
            changes.append(f"{decl.ref.prompts.name} changed")
        locked_params = (locked.get("params") or {}).get(PARAMS_FILE) or {}
        video = self.params.get("video_settings") or {}
        moved = [k for k in CLIP_PARAMS if locked_params.get(f"video_settings.{k}") != video.get(k)]
        if moved:
            changes.append("params.yaml " + ", ".join(f"video_settings.{k}" for k in moved) + " changed")
        inputs = decl.ref.inputs_file.as_posix()
        outs = {o.get("path"): o.get("md5") for o in locked.get("outs") or []}
        current = self.md5(inputs)
        if current is None or outs.get(inputs) != current:
            changes.append(f"{decl.ref.inputs_file.name} {'missing' if current is None else 'edited'}")
        elif (self.root / inputs).read_text(encoding="utf-8") != render_inputs(expected):
            changes.append(f"{decl.ref.inputs_file.name} out of date")
        return [Reason("inputs", f"{INPUTS_STAGE} stage: {'; '.join(changes)}")] if changes else []

    def _scene(self, decl: ConceptDecl, scene: SceneDecl, locked: dict | None, expected: dict,
               command: str) -> SceneStatus:
        status = SceneStatus(scene)
        if locked is None:
            status.reasons.append(Reason("new", "not generated yet (no dvc.lock entry)"))
            status.last_error = last_failure(self.root, scene)
            return status
        if locked.get("cmd") != command:
            status.reasons.append(Reason("command", "stage command changed"))
        old = ((locked.get("params") or {}).get(decl.ref.inputs_file.as_posix()) or {}).get(scene.stage)
        fields = changed_fields(old, expected)
        if fields:
            status.reasons.append(Reason("input", f"input changed: {', '.join(fields)}"))
        deps = {d.get("path"): d.get("md5") for d in locked.get("deps") or []}
        for image in scene.images:
            what = "first frame" if image == scene.frame else f"image {image}"
            current = self.md5(image)
            if current is None:
                status.reasons.append(Reason("frame", f"{what} missing ({image})"))
            elif deps.get(image) != current:
                status.reasons.append(Reason("frame", f"{what} changed"))
        if self.outputs:
            status.reasons += self._outs(scene, locked)
        if status.reasons:
            status.last_error = last_failure(self.root, scene)
        if status.reasons and all(r.kind == "output" for r in status.reasons):
            outs = [o.get("md5") for o in locked.get("outs") or []]
            status.fix = CHECKOUT if outs and all(md5 and self.in_cache(md5) for md5 in outs) else (
                PULL if self.remote else REPRO)
        return status

    def _outs(self, scene: SceneDecl, locked: dict) -> list[Reason]:
        by_path = {o.get("path"): o for o in locked.get("outs") or []}
        reasons = []
        for path in scene.outs:
            md5 = (by_path.get(path) or {}).get("md5")
            current = self.md5(path)
            if md5 and current == md5 and not self.in_cache(md5):
                reasons.append(Reason("output", f"{path} not in DVC cache"))
            elif current is None:
                reasons.append(Reason("output", f"{path} missing"))
            elif current != md5:
                reasons.append(Reason("output", f"{path} differs from dvc.lock"))
        return reasons

    def _leftovers(self, decl: ConceptDecl) -> list[str]:
        folder = self.root / decl.out_dir
        self._stamp(decl.out_dir)  # a file added to or removed from the folder changes its mtime
        self._stamp(Path(decl.out_dir) / "debug")
        if not folder.is_dir():
            return []
        declared = {Path(p) for s in decl.scenes for p in s.outs}
        found = []
        for path in sorted(folder.iterdir()):
            rel = path.relative_to(self.root)
            if path.name == ".gitignore" or path.name.startswith(".") or rel in declared:
                continue
            if path.is_dir() and path.name == "debug":
                found += [c.relative_to(self.root).as_posix() for c in sorted(path.iterdir())
                          if c.relative_to(self.root) not in declared and not c.name.startswith(".")]
                continue
            found.append(rel.as_posix())
        return found


# The line `s9.debugfile.write_error` writes: "✗ Scene N failed: <reason>".
_ERROR_PREFIX = re.compile(r"^✗ Scene \d+ failed: ")


def last_failure(root: Path, scene: SceneDecl) -> str | None:
    """The reason the scene's last run failed (its debug folder's error.txt, which a success removes), or None.
    Read only for stale scenes: a fresh scene's folder is the one DVC recorded."""
    path = root / scene.debug / "error.txt"
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            text = handle.read(4000)
    except OSError:
        return None
    text = " ".join(_ERROR_PREFIX.sub("", text.strip()).split())
    return text or None


def orphan_pipelines(root: Path, refs: list[ConceptRef]) -> list[str]:
    """Pipeline folders whose concept is no longer under data/ (`s9 sync` removes them)."""
    known = {ref.pipeline_dir for ref in refs}
    base = root / PIPELINES_ROOT
    if not base.is_dir():
        return []
    return sorted(p.parent.relative_to(root).as_posix() for p in base.glob(f"*/*/{DVC_FILE}")
                  if p.parent.relative_to(root) not in known)


def walk_status(root: Path, settings: Settings, report: StatusReport, targets: list[str] | None = None, *,
                outputs: bool = True, owns: Callable[[ConceptRef], bool] | None = None,
                every: bool = False) -> Iterator[ConceptStatus]:
    """The status of every registered concept (or the targets'; with `owns`, only the concepts it accepts), one
    at a time: a concept with something to report is yielded, the scenes of the others are counted into
    `report.fresh_scenes` (with `every`, every concept is yielded). A concept whose memo holds is not checked
    again."""
    checker = _Checker(root, settings, outputs)
    refs = [ref for ref in concept_refs(root) if owns is None or owns(ref)]
    if targets:
        decls = declare(root, settings, [(ref, load_registered(root, ref)) for ref in refs])
        chosen, wanted = select(decls, targets)
        todo: Iterator[tuple[ConceptRef, ConceptDecl | None]] = ((d.ref, d) for d in chosen)
    else:
        wanted = None
        todo = ((ref, None) for ref in refs)
    for ref, decl in todo:
        state = ConceptState(root, ref)
        if wanted is None and not every:
            fresh = state.fresh_scenes(checker.key, outputs)
            if fresh is not None:
                report.fresh_scenes += fresh
                continue
        if decl is None:
            [decl] = declare(root, settings, [(ref, load_registered(root, ref))])
        status = checker.concept(decl, wanted, state)
        state.save()
        if status.stale or status.leftovers or every:
            yield status
        else:
            report.fresh_scenes += len(status.scenes)


def concept_status(root: Path, settings: Settings, decl: ConceptDecl) -> ConceptStatus:
    """One concept's status, checked in full (its memo is not trusted, and is renewed)."""
    state = ConceptState(root, decl.ref)
    status = _Checker(root, settings, outputs=True).concept(decl, None, state)
    state.save()
    return status


def compute_status(root: Path, targets: list[str] | None = None, *, outputs: bool = True,
                   settings: Settings | None = None, every: bool = False) -> StatusReport:
    """Staleness of every registered scene (or the targets'). `outputs=False` ignores the clips themselves
    (missing, edited, not in the cache): only whether dvc.lock matches prompts, frames and params, which CI
    can check without `dvc pull`. `every`: up-to-date concepts are listed too, not only counted."""
    from .declare import root_pipeline_problem

    root = Path(root).resolve()
    settings = settings or project_settings(root)
    report = StatusReport([])
    report.concepts = list(walk_status(root, settings, report, targets, outputs=outputs, every=every))
    if not targets:
        report.orphans = orphan_pipelines(root, concept_refs(root))
        report.root_problem = root_pipeline_problem(root)
    return report
