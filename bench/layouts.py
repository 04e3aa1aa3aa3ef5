"""`dvc status` over the same stages in three layouts, for the measurement only (issue 14, item 4):

- per concept: what s9 writes, one `pipelines/{batch}/{concept}/dvc.yaml` + `dvc.lock` each;
- single file: every stage in the root `dvc.yaml` and `dvc.lock` (the layout of s9 0.1), stage names made unique
  (`{concept}-inputs`, `{concept}-p{N}`), the same commands, deps, params and outs;
- per group: one `dvc.yaml` + `dvc.lock` per group of concepts (what per-batch pipelines would be with batches
  of that many concepts).

The other layouts are written in place over the per-concept files (moved aside), measured, and undone.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

try:
    from yaml import CSafeDumper as Dumper
    from yaml import CSafeLoader as Loader
except ImportError:  # pragma: no cover - libyaml is in every wheel we install
    from yaml import SafeDumper as Dumper  # type: ignore[assignment]
    from yaml import SafeLoader as Loader  # type: ignore[assignment]


def _concepts(repo: Path) -> list[Path]:
    return sorted(p.parent for p in (repo / "pipelines").glob("*/*/dvc.yaml"))


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=Loader) if path.exists() else {}


def _merged(repo: Path, folders: list[Path], wdir: str) -> tuple[dict, dict]:
    """One pipeline holding the stages of `folders`' concepts, named apart, run from the repo root."""
    stages, locked = {}, {}
    for folder in folders:
        concept = folder.name
        pipeline = _load(folder / "dvc.yaml")
        lock = (_load(folder / "dvc.lock") or {}).get("stages", {})
        for name, stage in pipeline["stages"].items():
            key = f"{concept}-{name}"
            stages[key] = {**stage, "wdir": wdir}
            if name in lock:
                locked[key] = lock[name]
    return {"stages": stages}, {"schema": "2.0", "stages": locked}


@contextlib.contextmanager
def layout(repo: Path, kind: str, group: int = 100) -> Iterator[int]:
    """Rewrite the repo's pipelines as `kind` (per-concept | single | per-group) for the block; the number of
    pipeline files DVC then reads."""
    folders = _concepts(repo)
    if kind == "per-concept":
        yield len(folders) + 1
        return
    aside = repo.parent / "layout-aside"
    aside.mkdir()
    moved: list[tuple[Path, Path]] = []
    written: list[Path] = []
    try:
        for folder in folders:
            for name in ("dvc.yaml", "dvc.lock"):
                src = folder / name
                if src.exists():
                    dest = aside / folder.relative_to(repo) / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(src, dest)
                    moved.append((dest, src))
        root_yaml = repo / "dvc.yaml"
        shutil.copy(root_yaml, aside / "root-dvc.yaml")
        sources = {dest.parent: src.parent for dest, src in moved}
        chunks = [list(sources)] if kind == "single" else [list(sources)[i:i + group]
                                                            for i in range(0, len(sources), group)]
        for n, chunk in enumerate(chunks):
            folder = repo if kind == "single" else repo / "pipelines" / f"group{n:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            wdir = "." if kind == "single" else "../.."
            pipeline, lock = _merged(repo, chunk, wdir)
            for name, data in (("dvc.yaml", pipeline), ("dvc.lock", lock)):
                (folder / name).write_text(yaml.dump(data, Dumper=Dumper, sort_keys=False))
                written.append(folder / name)
        yield len(chunks)
    finally:
        for path in written:
            path.unlink(missing_ok=True)
        for folder in (repo / "pipelines").glob("group*"):
            shutil.rmtree(folder, ignore_errors=True)
        if (aside / "root-dvc.yaml").exists():
            shutil.copy(aside / "root-dvc.yaml", repo / "dvc.yaml")
        for dest, src in moved:
            shutil.move(dest, src)
        shutil.rmtree(aside, ignore_errors=True)
