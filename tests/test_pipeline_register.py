# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""Registering concepts and scenes: `s9 add` / `s9 remove` / `s9 sync` write each concept's pipeline; nobody
edits a dvc.yaml by hand, and what no stage declares any more leaves the outputs folder (kept in DVC's cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_concept, make_frame
from test_pipeline_helpers import (
    BIN,
    CONCEPT,
    DVC,
    PROMPTS,
    S9,
    built,
    clip,
    dvc_stale,
    fresh,
    inputs_stage,
    lock,
    run,
    s9_stale,
    stages,
)

from s9 import pipeline

PIPELINE_FILE = f"pipelines/b1/{CONCEPT}/dvc.yaml"


def _scenes(root: Path) -> list[dict]:
    return json.loads((root / PROMPTS).read_text())["scenes"]


def _write_scenes(root: Path, scenes: list[dict]) -> None:
    data = json.loads((root / PROMPTS).read_text())
    data["scenes"] = scenes
    (root / PROMPTS).write_text(json.dumps(data, indent=2))


def test_adding_a_concept_adds_exactly_its_pipeline(built: Path, tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in (built / "pipelines").rglob("*") if p.is_file()}
    prompts, frames = make_concept(tmp_path / "src", "harbor", batch="b1")
    result = run([S9, "add", str(prompts), str(frames)], built)
    assert "Registered harbor (batch b1): 3 scene(s) copied to data/, its pipeline in pipelines/b1/harbor/" \
        in result.stdout
    assert {p: p.read_bytes() for p in before} == before  # the other concept's files are untouched
    assert dvc_stale(built) == stages(1, 2, 3, concept="harbor") | {inputs_stage("harbor")}
    assert s9_stale(built) == stages(1, 2, 3, concept="harbor")
    # --batch overrides the batch read off the step-7 path.
    other, other_frames = make_concept(tmp_path / "src2", "dunes", batch="ignored")
    run([S9, "add", str(other), str(other_frames), "--batch", "b9"], built)
    assert (built / "data/s7_scene_prompts/b9/dunes/dunes_scene_prompts.json").is_file()
    [decl] = [d for d in pipeline.declared(built) if d.ref.name == "dunes"]
    assert decl.scenes[0].clip == "outputs/b9/dunes/dunes_p1_veo_3.1_fast.mp4"
    assert decl.scenes[0].debug == "outputs/b9/dunes/debug/scene_1"


def test_a_scene_added_to_the_prompts_file(built: Path) -> None:
    scenes = _scenes(built)
    scenes.append({**scenes[0], "scene_number": 4, "video_prompt": "The lamp turns."})
    _write_scenes(built, scenes)
    make_frame(built / f"data/s8_first_frames/b1/{CONCEPT}/{CONCEPT}_p4_first_frame.jpg")
    status = run([S9, "status"], built, check=False)
    assert status.returncode == 1 and "`s9 sync`" in status.stdout  # reported, nothing written
    assert run([S9, "sync"], built).stdout.splitlines()[0] == f"Wrote {PIPELINE_FILE}"
    assert "already up to date" in run([S9, "sync"], built).stdout
    assert s9_stale(built) == stages(4)
    assert dvc_stale(built) == stages(4) | {inputs_stage()}


@pytest.mark.slow
def test_a_scene_inserted_at_the_top_regenerates_only_itself(built: Path) -> None:
    """Stages are keyed by scene number: a new first entry leaves every other scene's stage as it was, for
    plain `dvc repro` as for `s9 repro`."""
    other = built.parent / "other"
    import shutil

    shutil.copytree(built, other, symlinks=True)
    for root in (built, other):
        _write_scenes(root, [{"scene_number": 9, "video_prompt": "A new opening."}, *_scenes(root)])
        make_frame(root / f"data/s8_first_frames/b1/{CONCEPT}/{CONCEPT}_p9_first_frame.jpg")
        run([S9, "sync"], root)
    untouched = {n: (built / clip(n)).read_bytes() for n in (1, 2, 3)}
    result = pipeline.repro(built)
    assert [r.scene_number for r in result.summary.results] == [9]
    out = run([DVC, "repro"], other).stdout
    assert out.count("Running stage") == 2 and f"{PIPELINE_FILE}:p9" in out  # inputs, then p9 only
    for root in (built, other):
        assert {n: (root / clip(n)).read_bytes() for n in (1, 2, 3)} == untouched
        assert dvc_stale(root) == set() == s9_stale(root)
    assert lock(built) == lock(other)


def test_removing_a_scene_drops_its_stage_lock_entry_and_clip(built: Path) -> None:
    _write_scenes(built, [_scenes(built)[0], _scenes(built)[2]])  # scene 2 goes; scene 3 keeps its stage
    result = pipeline.sync(built)
    assert result.pruned == [f"{PIPELINE_FILE}:p2"]
    assert sorted(result.tidied) == [f"outputs/b1/{CONCEPT}/debug/scene_2", clip(2)]  # in DVC's cache: nothing lost
    assert set(lock(built)) == {"inputs", "p1", "p3"}
    assert s9_stale(built) == set()
    assert dvc_stale(built) == {inputs_stage()}  # the step-7 file changed; no scene's input did
    result = pipeline.repro(built)
    assert result.summary.results == [] and result.resolved == [CONCEPT]
    assert dvc_stale(built) == set()


def test_remove_concept(built: Path, tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path / "src", "harbor", batch="b1")
    pipeline.add_concept(built, prompts, frames)
    result = run([S9, "remove", CONCEPT], built)
    assert result.stdout.splitlines()[-1] == f"Removed {CONCEPT} (batch b1): its data/ files and pipeline"
    assert f"Removed {clip(1)} (no stage declares it; it stays in DVC's cache)" in result.stdout
    assert not (built / f"data/s7_scene_prompts/b1/{CONCEPT}").exists()
    assert not (built / f"data/s8_first_frames/b1/{CONCEPT}").exists()
    assert not (built / f"pipelines/b1/{CONCEPT}").exists()
    assert not list((built / f"outputs/b1/{CONCEPT}").glob("*.mp4"))
    assert dvc_stale(built) == stages(1, 2, 3, concept="harbor") | {inputs_stage("harbor")}
    pipeline.remove_concept(built, "harbor", outputs=True)
    assert pipeline.declared(built) == []
    assert dvc_stale(built) == set()
    missing = run([S9, "remove", "harbor"], built, check=False)
    assert missing.returncode == 2 and "concept 'harbor' is not registered" in missing.stderr


def test_sync_prints_the_templates(fresh: Path) -> None:
    assert run([S9, "sync", "--print-template", "dvc.yaml"], fresh).stdout == pipeline.template_text("dvc.yaml")
    assert run([S9, "sync", "--print-template", "params.yaml"], fresh).stdout == \
        pipeline.template_text("params.yaml")


def test_sync_refuses_outputs_outside_the_repo(fresh: Path) -> None:
    params = fresh / "params.yaml"
    params.write_text(params.read_text().replace("video_outputs_dir: outputs", "video_outputs_dir: ../elsewhere"))
    result = run([S9, "status"], fresh, check=False)
    assert result.returncode == 2 and "must be inside the repository" in result.stderr


def test_commands_outside_a_dvc_repo_say_so(tmp_path: Path) -> None:
    result = run([S9, "status"], tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("not inside a DVC repository (run `git init && dvc init` first)")


def test_the_s9_0_1_layout_is_migrated(fresh: Path) -> None:
    """A repo of the single-pipeline layout (one foreach stage over s9_scenes.yaml): sync moves it over."""
    (fresh / "dvc.yaml").write_text("vars:\n  - s9_scenes.yaml\nstages:\n  scene:\n    foreach: ${scenes}\n"
                                    "    do:\n      cmd: s9 stage ${item.prompts}\n")
    (fresh / "s9_scenes.yaml").write_text("scenes: {}\n")
    (fresh / "dvc.lock").write_text("schema: '2.0'\nstages:\n  scene@tiny_p1:\n    cmd: s9 stage x\n")
    assert "Migrated the s9 0.1 layout" in run([S9, "sync"], fresh).stdout
    assert (fresh / "dvc.yaml").read_text() == pipeline.template_text("dvc.yaml")
    assert not (fresh / "s9_scenes.yaml").exists() and not (fresh / "dvc.lock").exists()
    assert s9_stale(fresh) == stages(1, 2, 3)
