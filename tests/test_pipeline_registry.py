# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""Registering concepts and scenes: `s9 add` / `s9 remove` / `s9 sync` never need a hand edit of dvc.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import make_concept, make_frame
from test_pipeline_helpers import BIN, CONCEPT, built, dvc_stale, fresh, lock, run, s9_stale, stages

from s9 import pipeline
from s9.errors import InputError

S9 = str(BIN / "s9")
PROMPTS = f"data/s7_scene_prompts/b1/{CONCEPT}/{CONCEPT}_scene_prompts.json"


def _scenes(root: Path) -> list[dict]:
    return json.loads((root / PROMPTS).read_text())["scenes"]


def _write_scenes(root: Path, scenes: list[dict]) -> None:
    data = json.loads((root / PROMPTS).read_text())
    data["scenes"] = scenes
    (root / PROMPTS).write_text(json.dumps(data, indent=2))


def test_adding_a_concept_adds_exactly_its_stages(built: Path, tmp_path: Path) -> None:
    dvc_yaml = (built / "dvc.yaml").read_bytes()
    prompts, frames = make_concept(tmp_path / "src", "harbor", batch="b1")
    result = run([S9, "add", str(prompts), str(frames)], built)
    assert "Registered harbor (batch b1)" in result.stdout and "6 scene stage(s) in total" in result.stdout
    assert (built / "dvc.yaml").read_bytes() == dvc_yaml
    assert dvc_stale(built) == stages(1, 2, 3, concept="harbor") == s9_stale(built)
    # --batch overrides the batch read off the step-7 path.
    other, other_frames = make_concept(tmp_path / "src2", "dunes", batch="ignored")
    run([S9, "add", str(other), str(other_frames), "--batch", "b9"], built)
    assert (built / "data/s7_scene_prompts/b9/dunes/dunes_scene_prompts.json").is_file()
    entry = {e.key: e for e in pipeline.read_entries(built)}["dunes_p1"]
    assert entry.clip == "outputs/b9/dunes/dunes_p1_veo_3.1_fast.mp4"
    assert entry.debug == "outputs/b9/dunes/debug/scene_1"


def test_adding_a_scene_to_the_prompts_file(built: Path) -> None:
    dvc_yaml = (built / "dvc.yaml").read_bytes()
    scenes = _scenes(built)
    scenes.append({**scenes[0], "scene_number": 4, "video_prompt": "The lamp turns."})
    _write_scenes(built, scenes)
    make_frame(built / f"data/s8_first_frames/b1/{CONCEPT}/{CONCEPT}_p4_first_frame.jpg")
    out = run([S9, "sync"], built).stdout
    assert out.strip() == "s9_scenes.yaml updated: 4 scene stage(s) of 1 concept(s) (+1 / -0)"
    assert run([S9, "sync"], built).stdout.startswith("s9_scenes.yaml unchanged")
    assert (built / "dvc.yaml").read_bytes() == dvc_yaml
    assert dvc_stale(built) == stages(4) == s9_stale(built)


def test_removing_the_last_scene_drops_its_stage_and_lock_entry(built: Path) -> None:
    _write_scenes(built, _scenes(built)[:2])
    result = pipeline.sync(built)
    assert result.changed and result.removed == ["scene@tiny_p3"]
    assert set(lock(built)) == stages(1, 2)
    assert dvc_stale(built) == set() == s9_stale(built)


@pytest.mark.slow
def test_middle_scene_removed_re_records_without_generating(built: Path) -> None:
    """Scene 3 moves from index 2 to 1: DVC sees a new params key, but the entry (and so the clip) is the same;
    `s9 repro` records the new key without generating."""
    scenes = _scenes(built)
    clip3 = built / f"outputs/b1/{CONCEPT}/{CONCEPT}_p3_veo_3.1_fast.mp4"
    before = clip3.read_bytes()
    _write_scenes(built, [scenes[0], scenes[2]])
    report = pipeline.status(built)
    assert [(s.entry.stage, [r.kind for r in s.reasons]) for s in report.stale] == [("scene@tiny_p3", ["moved"])]
    assert dvc_stale(built) == stages(3)
    result = pipeline.repro(built)
    assert result.rerecorded == ["scene@tiny_p3"] and result.summary.results == []
    assert clip3.read_bytes() == before
    assert set(lock(built)) == stages(1, 3)
    assert dvc_stale(built) == set() == s9_stale(built)


def test_remove_concept(built: Path, tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path / "src", "harbor", batch="b1")
    pipeline.add_concept(built, prompts, frames)
    result = run([S9, "remove", CONCEPT], built)
    assert result.stdout.strip() == f"Removed {CONCEPT} (batch b1); 3 scene stage(s) left"
    assert not (built / f"data/s7_scene_prompts/b1/{CONCEPT}").exists()
    assert not (built / f"data/s8_first_frames/b1/{CONCEPT}").exists()
    assert (built / f"outputs/b1/{CONCEPT}").is_dir()  # clips are kept unless asked
    assert not any(name.startswith(f"scene@{CONCEPT}_") for name in lock(built))
    assert {e.concept for e in pipeline.read_entries(built)} == {"harbor"}
    assert dvc_stale(built) == stages(1, 2, 3, concept="harbor")
    pipeline.remove_concept(built, "harbor", outputs=True)
    assert pipeline.read_entries(built) == []
    assert dvc_stale(built) == set()
    missing = run([S9, "remove", "harbor"], built, check=False)
    assert missing.returncode == 2 and "concept 'harbor' is not registered" in missing.stderr


def test_sync_refuses_a_dvc_yaml_without_the_scene_stage(fresh: Path) -> None:
    (fresh / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {"cmd": "true"}}}))
    with pytest.raises(InputError, match="has no s9 `scene` stage reading s9_scenes.yaml"):
        pipeline.sync(fresh)
    assert run([S9, "sync", "--print-template"], fresh).stdout == pipeline.template_text("dvc.yaml")


def test_sync_refuses_outputs_outside_the_repo(fresh: Path) -> None:
    params = fresh / "params.yaml"
    params.write_text(params.read_text().replace("video_outputs_dir: outputs", "video_outputs_dir: ../elsewhere"))
    result = run([S9, "status"], fresh, check=False)
    assert result.returncode == 2 and "must be inside the repository" in result.stderr


def test_commands_outside_a_dvc_repo_say_so(tmp_path: Path) -> None:
    result = run([S9, "status"], tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("not inside a DVC repository (run `git init && dvc init` first)")
