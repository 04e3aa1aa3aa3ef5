"""Helpers for the pipeline tests (real git + DVC repos in temp dirs), and unit tests of the hashing layer.

Other pipeline test modules import from here: `init_repo`, `built_repo` (a repo whose scenes were generated
once per test worker, copied per test), `dvc_stale`, `s9_stale`, `run`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import make_concept, make_frame

from s9 import pipeline
from s9.pipeline.hashing import HashCache, dir_md5, file_md5

BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dvc runs the stage command `s9 stage`
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "s9 tests",
    "GIT_AUTHOR_EMAIL": "tests@s9.invalid",
    "GIT_COMMITTER_NAME": "s9 tests",
    "GIT_COMMITTER_EMAIL": "tests@s9.invalid",
}
for _var in ("REPLICATE_API_TOKEN", "REPLICATE_API_KEY", "REPLICATE_BASE_URL"):
    ENV.pop(_var, None)

# Short clips keep the offline renderer quick: 4 s at 720p.
PARAMS = """\
video_settings:
  video_model: google/veo-3.1-fast
  aspect_ratio: "16:9"
  duration_seconds: 4
  resolution: 720p
  generate_audio: true
  backend: offline
  continuity: none
  max_workers: 3
  prediction_timeout_seconds: 1800
output:
  video_outputs_dir: outputs
budget:
  max_spend_usd: 25.0
  price_per_second_usd:
    openai/sora-2: 0.10
    google/veo-3-fast: 0.15
    google/veo-3.1-fast: 0.15
"""
CONCEPT = "tiny"
BATCH = "b1"
S9 = str(BIN / "s9")
DVC = str(BIN / "dvc")
# Where the tiny concept's files live in a built repo.
PROMPTS = f"data/s7_scene_prompts/{BATCH}/{CONCEPT}/{CONCEPT}_scene_prompts.json"
FRAMES = f"data/s8_first_frames/{BATCH}/{CONCEPT}"
PIPELINE = f"pipelines/{BATCH}/{CONCEPT}"
OUT = f"outputs/{BATCH}/{CONCEPT}"


def run(args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def init_repo(root: Path, params: str = PARAMS) -> Path:
    """`git init && dvc init` with short-clip params; no concept yet."""
    root.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q", "-b", "main"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    (root / "params.yaml").write_text(params)
    return root


def add_tiny(root: Path, src: Path, name: str = CONCEPT, scenes: list[dict] | None = None) -> pipeline.AddResult:
    prompts, frames = make_concept(src, name, scenes=scenes, batch=BATCH)
    return pipeline.add_concept(root, prompts, frames)


def dvc_stale(root: Path) -> set[str]:
    """Stage addresses `dvc status` reports as changed (scene stages and `inputs` stages alike)."""
    out = run([str(BIN / "dvc"), "status", "--json"], root).stdout
    return set(json.loads(out or "{}"))


def s9_stale(root: Path) -> set[str]:
    """Scene stage addresses `s9 status` reports as stale."""
    return {s.decl.address for s in pipeline.status(root).stale}


def stages(*scenes: int, concept: str = CONCEPT, batch: str = BATCH) -> set[str]:
    return {f"pipelines/{batch}/{concept}/dvc.yaml:p{n}" for n in scenes}


def inputs_stage(concept: str = CONCEPT, batch: str = BATCH) -> str:
    return f"pipelines/{batch}/{concept}/dvc.yaml:inputs"


def lock(root: Path, concept: str = CONCEPT, batch: str = BATCH) -> dict:
    return yaml.safe_load((root / f"pipelines/{batch}/{concept}/dvc.lock").read_text())["stages"]


def clip(n: int, concept: str = CONCEPT, batch: str = BATCH, suffix: str = "veo_3.1_fast") -> str:
    return f"outputs/{batch}/{concept}/{concept}_p{n}_{suffix}.mp4"


def copy_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    shutil.rmtree(dest / ".s9", ignore_errors=True)  # caches are per checkout
    return dest


def _shared_dir(factory: pytest.TempPathFactory) -> Path:
    """A temp folder all xdist workers of this run share (the per-worker base temp otherwise)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _template(factory: pytest.TempPathFactory, name: str, build) -> Path:  # noqa: ANN001
    """Build a repo once per test run (across workers, under a file lock); tests copy it."""
    import fcntl

    shared = _shared_dir(factory)
    root = shared / f"s9-pipeline-{name}" / "repo"
    with (shared / f"s9-pipeline-{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not (root.parent / "done").exists():
            shutil.rmtree(root.parent, ignore_errors=True)
            build(root)
            (root.parent / "done").touch()
    return root


def _build_fresh(root: Path) -> None:
    init_repo(root)
    add_tiny(root, root.parent / "src")


def _build_built(root: Path, fresh: Path) -> None:
    copy_repo(fresh, root)
    result = pipeline.repro(root, workers=3)
    assert result.ok, result.summary.results


@pytest.fixture
def fresh(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A repo with a 3-scene concept registered (4 s clips), nothing generated."""
    return copy_repo(_template(tmp_path_factory, "fresh", _build_fresh), tmp_path / "fresh")


@pytest.fixture
def built(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """The same repo after `s9 repro -j 3` (generated once per test run)."""
    fresh_root = _template(tmp_path_factory, "fresh", _build_fresh)
    built_root = _template(tmp_path_factory, "built", lambda root: _build_built(root, fresh_root))
    return copy_repo(built_root, tmp_path / "built")


# -- unit tests of the hashing layer -------------------------------------------------------------------------
def test_dir_md5_is_dvcs_tree_hash(tmp_path: Path) -> None:
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    files = {"b.txt": b"bee\n", "a/x.txt": b"ex", "a.txt": b"a"}
    tree = Tree()
    rows = []
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
        md5 = file_md5(tmp_path / rel)
        tree.add(tuple(rel.split("/")), Meta(size=len(data)), HashInfo("md5", md5))
        rows.append((rel, md5, len(data)))
    tree.digest()
    ours = dir_md5(rows)
    assert ours.md5 == tree.hash_info.value
    assert (ours.size, ours.nfiles) == (sum(map(len, files.values())), 3)
    assert HashCache(None).dir_hash(tmp_path) == ours


def test_hash_cache_skips_unchanged_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clip.bin"
    path.write_bytes(b"x" * 1000)
    cache = HashCache(tmp_path / "state" / "hashes.json")
    first = cache.md5(path)
    cache.save()
    calls = []
    monkeypatch.setattr("s9.pipeline.hashing.file_md5", lambda p: calls.append(p) or "never")
    again = HashCache(tmp_path / "state" / "hashes.json")
    assert again.md5(path) == first and calls == []
    path.write_bytes(b"y" * 1001)  # size (and mtime) change: rehashed
    assert again.md5(path) == "never" and calls == [path]


def test_frames_for_helpers_are_valid(tmp_path: Path) -> None:
    # make_frame is what every pipeline test registers; a broken helper would fail them all obscurely.
    from s9.job import check_image

    check_image(make_frame(tmp_path / "f.jpg"), 1)
