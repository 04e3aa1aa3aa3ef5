# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""The DVC scene pipeline end to end: real git + DVC repos in temp dirs, real `s9` / `dvc` runs, real MP4s.

Staleness is checked three ways: the scenes we expect, `s9 status`, and `dvc status`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SAMPLE_CONCEPT, make_concept, make_frame
from test_pipeline_helpers import (
    BIN,
    CONCEPT,
    DVC,
    FRAMES,
    PIPELINE,
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
from s9.params import CLIP_PARAMS


def edit_prompt(root: Path, index: int, text: str) -> None:
    path = root / PROMPTS
    data = json.loads(path.read_text())
    data["scenes"][index]["video_prompt"] = text
    path.write_text(json.dumps(data, indent=2))


def set_param(root: Path, key: str, value: object) -> None:
    path = root / "params.yaml"
    data = yaml.safe_load(path.read_text())
    section, name = key.split(".")
    data[section][name] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# -- the pipeline files --------------------------------------------------------------------------------------
def test_concept_pipeline_declares_exactly_what_shapes_each_clip(fresh: Path) -> None:
    stages_ = yaml.safe_load((fresh / PIPELINE / "dvc.yaml").read_text())["stages"]
    assert list(stages_) == ["inputs", "p1", "p2", "p3"]
    inputs = stages_["inputs"]
    assert inputs["deps"] == [PROMPTS]
    assert inputs["params"] == [f"video_settings.{key}" for key in CLIP_PARAMS]
    assert inputs["outs"] == [{f"{PIPELINE}/inputs.json": {"cache": False, "persist": True}}]
    p2 = stages_["p2"]
    assert p2["wdir"] == "../../.." and p2["cmd"] == f"s9 stage {PIPELINE} 2 {clip(2)}"
    assert p2["params"] == [{f"{PIPELINE}/inputs.json": ["p2"]}]  # keyed by scene number, not list position
    assert p2["deps"] == [f"{FRAMES}/{CONCEPT}_p2_first_frame.jpg"]
    assert p2["outs"] == [clip(2), f"outputs/b1/{CONCEPT}/debug/scene_2"]
    assert (fresh / "dvc.yaml").read_text() == pipeline.template_text("dvc.yaml")


def test_repo_pipeline_is_generated_and_the_root_has_no_stages() -> None:
    """The repo's own pipelines are what `s9 sync` writes, and DVC collects exactly the sample's stages."""
    from dvc.repo import Repo

    [decl] = pipeline.declared(REPO)
    assert (REPO / decl.ref.dvc_file).read_text() == decl.render(), "run `s9 sync`"
    assert (REPO / "dvc.yaml").read_text() == pipeline.template_text("dvc.yaml")
    with Repo(str(REPO)) as repo:
        names = {stage.addressing for stage in repo.index.stages}
    base = f"pipelines/sample_batch/{SAMPLE_CONCEPT}/dvc.yaml"
    assert names == {f"{base}:inputs", *(f"{base}:p{n}" for n in range(1, 6))}


def test_fresh_repo_add_writes_templates_and_registers(tmp_path: Path) -> None:
    """`git init && dvc init`, then `s9 add`: dvc.yaml and params.yaml come from the package; DVC sees the stages."""
    root = tmp_path / "repo"
    root.mkdir()
    run(["git", "init", "-q"], root)
    run([DVC, "init", "-q"], root)
    prompts, frames = make_concept(tmp_path / "src", "lighthouse", batch="night")
    out = run([S9, "add", str(prompts), str(frames)], root).stdout
    assert "Registered lighthouse (batch night): 3 scene(s)" in out
    assert (root / "dvc.yaml").read_text() == pipeline.template_text("dvc.yaml")
    assert (root / "params.yaml").read_text() == pipeline.template_text("params.yaml")
    assert (root / "data/s7_scene_prompts/night/lighthouse/lighthouse_scene_prompts.json").read_bytes() == \
        prompts.read_bytes()
    for n in (1, 2, 3):
        assert (root / f"data/s8_first_frames/night/lighthouse/lighthouse_p{n}_first_frame.jpg").is_file()
    expected = stages(1, 2, 3, concept="lighthouse", batch="night")
    assert dvc_stale(root) == expected | {inputs_stage("lighthouse", "night")}
    status = run([S9, "status", "--json"], root, check=False)
    assert status.returncode == 1
    report = json.loads(status.stdout)["concepts"]["lighthouse"]
    assert {s["stage"] for s in report["stale"]} == expected
    assert all(s["reasons"] == [{"kind": "new", "message": "not generated yet (no dvc.lock entry)"}]
               for s in report["stale"])


def test_add_rejects_missing_frames_and_clashing_concepts(fresh: Path, tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path / "src", "gaps", frames=False)
    make_frame(frames / "gaps_p1_first_frame.jpg")
    result = run([S9, "add", str(prompts), str(frames)], fresh, check=False)
    assert result.returncode == 2
    assert "first frames missing for gaps: gaps_p2_first_frame.jpg, gaps_p3_first_frame.jpg" in result.stderr
    assert not (fresh / "data/s7_scene_prompts/b1/gaps").exists()
    prompts, frames = make_concept(tmp_path / "src2", CONCEPT, batch="b2")
    result = run([S9, "add", str(prompts), str(frames)], fresh, check=False)
    assert result.returncode == 2 and "already registered in batch 'b1'" in result.stderr


# -- s9 repro ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_repro_parallel_leaves_dvc_clean_and_dvc_repro_a_noop(fresh: Path) -> None:
    result = run([S9, "repro", "-j", "3"], fresh)
    assert "Success rate: 3/3 (100%)" in result.stdout and "Parallel workers: 3" in result.stdout
    assert "Recorded in dvc.lock: 3 scene stage(s)" in result.stdout
    for n in (1, 2, 3):
        assert (fresh / clip(n)).stat().st_size > 1000
        assert (fresh / f"outputs/b1/{CONCEPT}/debug/scene_{n}/veo3_p{n}_prompt.txt").is_file()
    assert dvc_stale(fresh) == set()
    before = (fresh / PIPELINE / "dvc.lock").read_bytes()
    again = run([DVC, "repro"], fresh).stdout
    assert again.count("didn't change, skipping") == 4
    assert (fresh / PIPELINE / "dvc.lock").read_bytes() == before
    assert run([S9, "status"], fresh).stdout.strip() == "All 3 scene(s) up to date."
    assert "nothing to do" in run([S9, "repro"], fresh).stdout
    metrics = json.loads((fresh / PIPELINE / "metrics.json").read_text())
    assert metrics == {"scenes": 3, "clips": 3, "video_seconds": 12, "estimated_cost_usd": 1.8, "actual_cost_usd": 0.0,
                       "generation_seconds": 0.0, "failed_scenes": 0}
    receipt = json.loads((fresh / f"outputs/b1/{CONCEPT}/debug/scene_1/receipt.json").read_text())
    assert receipt == {"backend": "offline", "model": "google/veo-3.1-fast", "output_seconds": 4, "cost_usd": 0.0,
                       "predict_seconds": None}
    assert CONCEPT in run([DVC, "metrics", "show"], fresh).stdout


@pytest.mark.slow
def test_plain_dvc_repro_gives_the_same_outputs_and_lock(fresh: Path, built: Path) -> None:
    """Sequential `dvc repro` (running `s9 resolve` and `s9 stage`) and parallel `s9 repro` agree byte for byte."""
    run([DVC, "repro"], fresh)
    for name in ("dvc.lock", "inputs.json", "metrics.json"):
        assert (fresh / PIPELINE / name).read_bytes() == (built / PIPELINE / name).read_bytes(), name
    assert dvc_stale(fresh) == set() and s9_stale(fresh) == set()


# -- staleness: expected == s9 status, and dvc status agrees -------------------------------------------------
def _replace_frame(root: Path) -> None:
    make_frame(root / FRAMES / f"{CONCEPT}_p3_first_frame.jpg", color=(10, 200, 30))


def _rewrite_json_same_entries(root: Path) -> None:
    data = json.loads((root / PROMPTS).read_text())
    data["title"] = "A new title"
    (root / PROMPTS).write_text(json.dumps(data, indent=4))


def _touch_other_params(root: Path) -> None:
    set_param(root, "video_settings.max_workers", 7)
    set_param(root, "video_settings.prediction_timeout_seconds", 60)
    set_param(root, "budget.max_spend_usd", 1.0)


def _delete_clip(root: Path) -> None:
    (root / clip(1)).unlink()


def _modify_clip(root: Path) -> None:
    with (root / clip(2)).open("ab") as handle:
        handle.write(b"tampered")


def _edit_debug_file(root: Path) -> None:
    with (root / f"outputs/b1/{CONCEPT}/debug/scene_3/veo3_p3_prompt.txt").open("a") as handle:
        handle.write("edited\n")


def _empty_dvc_cache(root: Path) -> None:
    import shutil

    shutil.rmtree(root / ".dvc/cache")


# case: (change, scenes s9 reports stale, reason kind, what `dvc status` reports: scene stages and/or inputs)
CASES = {
    "prompt edit -> that scene": (lambda r: edit_prompt(r, 1, "A different shot."), {2}, "input", "inputs"),
    "frame replaced -> that scene": (_replace_frame, {3}, "frame", "scenes"),
    "model -> every scene": (lambda r: set_param(r, "video_settings.video_model", "google/veo-3-fast"),
                             {1, 2, 3}, "input", "inputs"),
    "aspect ratio -> every scene": (lambda r: set_param(r, "video_settings.aspect_ratio", "9:16"),
                                    {1, 2, 3}, "input", "inputs"),
    "max_workers, timeout, budget -> none": (_touch_other_params, set(), None, None),
    "json reformatted -> none": (_rewrite_json_same_entries, set(), None, "inputs"),
    "clip deleted": (_delete_clip, {1}, "output", "scenes"),
    "clip modified": (_modify_clip, {2}, "output", "scenes"),
    "debug file edited": (_edit_debug_file, {3}, "output", "scenes"),
    "dvc cache emptied": (_empty_dvc_cache, {1, 2, 3}, "output", "scenes"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_staleness_agrees_with_dvc_status(built: Path, case: str) -> None:
    change, scenes, kind, dvc_sees = CASES[case]
    change(built)
    report = pipeline.status(built)
    assert {s.decl.address for s in report.stale} == stages(*scenes)
    for scene in report.stale:
        assert kind in {r.kind for r in scene.reasons}, scene.reasons
    # DVC names the scene stages when a scene's own file changed; when a step-7 file or params.yaml changed it
    # names the concept's `inputs` stage (s9 already knows which scenes that reaches).
    expected = {None: set(), "scenes": stages(*scenes), "inputs": {inputs_stage()}}[dvc_sees]
    assert dvc_stale(built) == expected
    concept_reasons = [r.kind for c in report.concepts for r in c.reasons]
    assert ("inputs" in concept_reasons) == (dvc_sees == "inputs")
    assert report.up_to_date == (dvc_sees is None)


def test_status_json_shape_and_exit_codes(built: Path) -> None:
    clean = run([S9, "status", "--json"], built)
    assert json.loads(clean.stdout) == {"up_to_date": True, "scenes": 3, "stale": 0, "fix": None, "orphans": [],
                                        "concepts": {}}
    edit_prompt(built, 0, "Another first shot.")
    _delete_clip(built)
    stale = run([S9, "status", "--json"], built, check=False)
    assert stale.returncode == 1
    report = json.loads(stale.stdout)
    assert report["up_to_date"] is False and (report["scenes"], report["stale"]) == (3, 1)
    concept = report["concepts"][CONCEPT]
    assert concept["batch"] == "b1" and concept["pipeline"] == f"{PIPELINE}/dvc.yaml"
    [entry] = concept["stale"]
    assert entry["stage"] == f"{PIPELINE}/dvc.yaml:p1" and entry["key"] == "tiny_p1" and entry["scene"] == 1
    assert entry["clip"] == clip(1)
    assert {r["kind"] for r in entry["reasons"]} == {"input", "output"}
    assert "input changed: input.prompt" in [r["message"] for r in entry["reasons"]]
    text = run([S9, "status"], built, check=False)
    assert text.returncode == 1
    assert "tiny (batch b1): 1 of 3 scene(s) stale" in text.stdout
    assert "tiny_p1: input changed: input.prompt" in text.stdout
    assert run([S9, "status", "tiny_p2"], built).returncode == 0
    bad = run([S9, "status", "nope"], built, check=False)
    assert bad.returncode == 2 and "nope: no such concept or scene stage" in bad.stderr


@pytest.mark.slow
def test_only_the_stale_scene_is_regenerated(built: Path) -> None:
    edit_prompt(built, 1, "The keeper climbs the stairs.")
    untouched = {n: (built / clip(n)).stat().st_mtime_ns for n in (1, 3)}
    result = pipeline.repro(built)
    assert [r.scene_number for r in result.summary.results] == [2] and result.recorded == list(stages(2))
    assert {n: (built / clip(n)).stat().st_mtime_ns for n in (1, 3)} == untouched
    assert dvc_stale(built) == set() == s9_stale(built)


def test_deleted_outputs_are_restored_from_dvc_cache(built: Path) -> None:
    _delete_clip(built)
    _modify_clip(built)
    status = run([S9, "status"], built, check=False)
    assert status.returncode == 1 and "run `dvc checkout` (the clips are in DVC's cache)" in status.stdout
    the_plan = pipeline.plan(built)
    assert sorted(p.stage for p in the_plan.restored) == sorted(stages(1, 2)) and not the_plan.to_generate
    result = pipeline.repro(built)
    assert result.summary.results == [] and sorted(result.restored) == sorted(stages(1, 2))
    assert dvc_stale(built) == set() == s9_stale(built)


# -- failures ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_failed_scene_stays_stale_while_the_others_are_recorded(built: Path) -> None:
    recorded_before = lock(built)["p2"]
    edit_prompt(built, 0, "New opening.")
    edit_prompt(built, 2, "New ending.")
    # Scene 2's frame breaks after registration: its stage is stale and cannot be generated.
    (built / FRAMES / f"{CONCEPT}_p2_first_frame.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = run([S9, "repro", "-j", "3"], built, check=False)
    assert result.returncode == 1
    assert "Success rate: 2/3 (67%)" in result.stdout
    assert "Scene 2 failed" in result.stderr and "not a readable image" in result.stderr
    assert "Recorded in dvc.lock: 2 scene stage(s)" in result.stdout
    assert dvc_stale(built) == stages(2) == s9_stale(built)
    assert lock(built)["p2"] == recorded_before  # never recorded as up to date


def test_a_scene_added_without_its_frame_is_flagged_not_priced_and_the_others_run(built: Path) -> None:
    """Issue 9, items 8 and 11: a scene whose first frame is missing (or unreadable) is reported by status and
    plan instead of priced, and repro makes the others and fails only that one: one line each, never an
    internal error."""
    data = json.loads((built / PROMPTS).read_text())
    data["scenes"].append({"scene_number": 4, "video_prompt": "A new scene, no frame yet.", "duration_seconds": 4})
    data["scenes"][0]["video_prompt"] = "A new opening."
    (built / PROMPTS).write_text(json.dumps(data, indent=2))
    (built / FRAMES / f"{CONCEPT}_p3_first_frame.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    run([S9, "sync"], built)
    status = run([S9, "status"], built, check=False)
    assert status.returncode == 1 and "tiny_p4: not generated yet" in status.stdout
    assert "first frame changed" in status.stdout  # scene 3
    the_plan = run([S9, "plan"], built)
    assert "internal error" not in the_plan.stderr
    assert "[tiny] ⚠ tiny_p4: " in the_plan.stderr and "first frame for scene 4 not found" in the_plan.stderr
    assert "[tiny] ⚠ tiny_p3: " in the_plan.stderr and "not a readable image" in the_plan.stderr
    assert the_plan.stdout.splitlines()[-1].startswith("Total: 1 scene(s) to generate")
    result = run([S9, "repro"], built, check=False)
    assert result.returncode == 1 and "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "[tiny] ✗ Scene 4 failed: " in result.stderr and "[tiny] ✗ Scene 3 failed: " in result.stderr
    assert "Recorded in dvc.lock: 1 scene stage(s)" in result.stdout
    assert s9_stale(built) == stages(3, 4)


@pytest.mark.slow
def test_continuity_makes_the_next_frame_a_dependency_and_the_clip_end_on_it(fresh: Path) -> None:
    """video_settings.continuity: next_first_frame — scene N ends on scene N+1's first frame: that frame is a
    dependency of scene N's stage (replacing it makes N and N+1 stale), and the offline preview ends on it."""
    import av
    import numpy as np

    set_param(fresh, "video_settings.continuity", "next_first_frame")
    run([S9, "sync"], fresh)
    stages_ = yaml.safe_load((fresh / PIPELINE / "dvc.yaml").read_text())["stages"]
    frame = f"{FRAMES}/{CONCEPT}_p{{}}_first_frame.jpg"
    assert stages_["p1"]["deps"] == [frame.format(1), frame.format(2)]
    assert stages_["p3"]["deps"] == [frame.format(3)]  # the last scene has no next one
    run([S9, "repro"], fresh)
    inputs = json.loads((fresh / PIPELINE / "inputs.json").read_text())
    assert "last_frame" not in inputs["p1"]["input"]  # an image: its bytes are the dependency, not a param
    with av.open(str(fresh / clip(1))) as container:
        last = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][-1].astype(int)
    with av.open(str(fresh / clip(2))) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert np.abs(last - first).mean() < 6  # the cut matches: scene 1 ends where scene 2 begins
    make_frame(fresh / FRAMES / f"{CONCEPT}_p2_first_frame.jpg", color=(10, 200, 30))
    assert s9_stale(fresh) == stages(1, 2) == dvc_stale(fresh)


def test_a_renderer_upgrade_is_a_stated_change(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline clips' bytes depend on the renderer and the encoders under it: a new renderer version (or
    PyAV / FFmpeg / x264 / Pillow build) makes every offline scene stale, saying why."""
    from s9.video import encode

    monkeypatch.setattr(encode, "RENDERER_VERSION", encode.RENDERER_VERSION + 1)
    report = pipeline.status(built)
    assert {s.decl.address for s in report.stale} == stages(1, 2, 3)
    assert all(any(r.message == "input changed: renderer" for r in s.reasons) for s in report.stale)
