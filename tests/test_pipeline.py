# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""The DVC scene pipeline end to end: real git + DVC repos in temp dirs, real `s9` / `dvc` runs, real MP4s.

Every staleness case is checked three ways: the scenes we expect, `s9 status`, and `dvc status`.
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
    add_tiny,
    built,
    dvc_stale,
    fresh,
    init_repo,
    lock,
    run,
    s9_stale,
    stages,
)

from s9 import pipeline
from s9.params import CLIP_PARAMS, load_settings

S9 = str(BIN / "s9")
DVC = str(BIN / "dvc")
PROMPTS = f"data/s7_scene_prompts/b1/{CONCEPT}/{CONCEPT}_scene_prompts.json"
FRAMES = f"data/s8_first_frames/b1/{CONCEPT}"


def _edit_prompt(root: Path, index: int, text: str) -> None:
    path = root / PROMPTS
    data = json.loads(path.read_text())
    data["scenes"][index]["video_prompt"] = text
    path.write_text(json.dumps(data, indent=2))


def _set_param(root: Path, key: str, value: object) -> None:
    path = root / "params.yaml"
    data = yaml.safe_load(path.read_text())
    section, name = key.split(".")
    data[section][name] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# -- the stage definition ------------------------------------------------------------------------------------
def test_template_declares_exactly_the_clip_params_as_deps() -> None:
    stage = yaml.safe_load(pipeline.template_text("dvc.yaml"))["stages"]["scene"]
    params = stage["do"]["params"]
    assert params[0] == {"${item.prompts}": ["scenes.${item.index}"]}
    assert params[1:] == [f"video_settings.{key}" for key in CLIP_PARAMS]
    assert stage["do"]["deps"] == ["${item.frame}"]
    assert stage["do"]["outs"] == ["${item.clip}", "${item.debug}"]
    assert stage["do"]["cmd"].startswith("s9 stage ")
    assert load_settings(REPO / "s9/assets/params.yaml.tmpl").video_model  # the shipped params template is valid


def test_repo_pipeline_is_the_template_and_registers_the_sample() -> None:
    """The repo's own dvc.yaml is the shipped one and its scene list is in sync with data/ and params.yaml."""
    assert (REPO / "dvc.yaml").read_text() == pipeline.template_text("dvc.yaml")
    entries = pipeline.registry.compute_entries(REPO)
    assert {e.concept for e in entries} == {SAMPLE_CONCEPT}
    assert (REPO / pipeline.VARS_FILE).read_text() == pipeline.registry.render_vars(entries), "run `s9 sync`"


def test_repo_has_one_pipeline_file() -> None:
    """DVC collects every dvc.yaml in a repo: the s9 repo's only one is the root's (the template is *.tmpl)."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        assert {stage.dvcfile.relpath for stage in repo.index.stages} == {"dvc.yaml"}
        assert {stage.name for stage in repo.index.stages} == {f"scene@{SAMPLE_CONCEPT}_p{n}" for n in range(1, 6)}


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
    expected = stages(1, 2, 3, concept="lighthouse")
    assert dvc_stale(root) == expected
    status = run([S9, "status", "--json"], root, check=False)
    assert status.returncode == 1
    report = json.loads(status.stdout)
    assert {s["stage"] for s in report["concepts"]["lighthouse"]["stale"]} == expected
    assert all(s["reasons"] == [{"kind": "new", "message": "not generated yet (no dvc.lock entry)"}]
               for s in report["concepts"]["lighthouse"]["stale"])


def test_add_rejects_missing_frames_and_clashing_concepts(fresh: Path, tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path / "src", "gaps", frames=False)
    make_frame(frames / "gaps_p1_first_frame.jpg")
    result = run([S9, "add", str(prompts), str(frames)], fresh, check=False)
    assert result.returncode == 2
    assert "first frames missing for gaps: gaps_p2_first_frame.jpg, gaps_p3_first_frame.jpg" in result.stderr
    assert not (fresh / "data/s7_scene_prompts/b1/gaps").exists()
    # The same concept name in another batch would give two stages one name.
    prompts, frames = make_concept(tmp_path / "src2", CONCEPT, batch="b2")
    result = run([S9, "add", str(prompts), str(frames)], fresh, check=False)
    assert result.returncode == 2 and "already registered in batch 'b1'" in result.stderr


# -- s9 repro ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_repro_parallel_leaves_dvc_clean_and_dvc_repro_a_noop(fresh: Path) -> None:
    result = run([S9, "repro", "-j", "3"], fresh)
    assert "Success rate: 3/3 (100%)" in result.stdout and "Parallel workers: 3" in result.stdout
    assert "Recorded in dvc.lock: 3 stage(s)" in result.stdout
    for n in (1, 2, 3):
        assert (fresh / f"outputs/b1/{CONCEPT}/{CONCEPT}_p{n}_veo_3.1_fast.mp4").stat().st_size > 1000
        assert (fresh / f"outputs/b1/{CONCEPT}/debug/scene_{n}/veo3_p{n}_prompt.txt").is_file()
    assert dvc_stale(fresh) == set()
    before = (fresh / "dvc.lock").read_bytes()
    again = run([DVC, "repro"], fresh).stdout
    assert again.count("didn't change, skipping") == 3
    assert (fresh / "dvc.lock").read_bytes() == before
    assert run([S9, "status"], fresh).stdout.strip() == "All 3 scene(s) up to date."
    assert "nothing to do" in run([S9, "repro"], fresh).stdout


@pytest.mark.slow
def test_plain_dvc_repro_gives_the_same_outputs_and_lock(fresh: Path, built: Path) -> None:
    """Sequential `dvc repro` (running `s9 stage` per scene) and parallel `s9 repro` agree byte for byte."""
    run([DVC, "repro"], fresh)
    assert lock(fresh) == lock(built)
    assert (fresh / "dvc.lock").read_bytes() == (built / "dvc.lock").read_bytes()
    assert dvc_stale(fresh) == set() and s9_stale(fresh) == set()


# -- staleness: expected == s9 status == dvc status ----------------------------------------------------------
def _replace_frame(root: Path) -> None:
    make_frame(root / FRAMES / f"{CONCEPT}_p3_first_frame.jpg", color=(10, 200, 30))


def _rewrite_json_same_entries(root: Path) -> None:
    # Reformatting the file, or editing fields outside `scenes`, must not make any scene stale.
    data = json.loads((root / PROMPTS).read_text())
    data["title"] = "A new title"
    (root / PROMPTS).write_text(json.dumps(data, indent=4))


def _touch_other_params(root: Path) -> None:
    _set_param(root, "video_settings.max_workers", 7)
    _set_param(root, "video_settings.prediction_timeout_seconds", 60)
    _set_param(root, "budget.max_spend_usd", 1.0)


def _delete_clip(root: Path) -> None:
    (root / f"outputs/b1/{CONCEPT}/{CONCEPT}_p1_veo_3.1_fast.mp4").unlink()


def _modify_clip(root: Path) -> None:
    with (root / f"outputs/b1/{CONCEPT}/{CONCEPT}_p2_veo_3.1_fast.mp4").open("ab") as handle:
        handle.write(b"tampered")


def _edit_debug_file(root: Path) -> None:
    with (root / f"outputs/b1/{CONCEPT}/debug/scene_3/veo3_p3_prompt.txt").open("a") as handle:
        handle.write("edited\n")


def _empty_dvc_cache(root: Path) -> None:
    import shutil

    shutil.rmtree(root / ".dvc/cache")


CASES = {
    "prompt edit -> that scene": (lambda r: _edit_prompt(r, 1, "A different shot."), {2}, "prompt"),
    "frame replaced -> that scene": (_replace_frame, {3}, "frame"),
    "model -> every scene": (lambda r: _set_param(r, "video_settings.video_model", "google/veo-3-fast"),
                             {1, 2, 3}, "params"),
    "aspect ratio -> every scene": (lambda r: _set_param(r, "video_settings.aspect_ratio", "9:16"),
                                    {1, 2, 3}, "params"),
    "max_workers, timeout, budget -> none": (_touch_other_params, set(), None),
    "json reformatted -> none": (_rewrite_json_same_entries, set(), None),
    "clip deleted": (_delete_clip, {1}, "output"),
    "clip modified": (_modify_clip, {2}, "output"),
    "debug file edited": (_edit_debug_file, {3}, "output"),
    "dvc cache emptied": (_empty_dvc_cache, {1, 2, 3}, "output"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_staleness_agrees_with_dvc_status(built: Path, case: str) -> None:
    change, scenes, kind = CASES[case]
    change(built)
    expected = stages(*scenes)
    report = pipeline.status(built)  # re-syncs the scene list first, as `s9 repro` does
    assert {s.entry.stage for s in report.stale} == expected
    assert dvc_stale(built) == expected
    for scene in report.stale:
        assert kind in {r.kind for r in scene.reasons}, scene.reasons


def test_status_json_shape_and_exit_codes(built: Path) -> None:
    clean = run([S9, "status", "--json"], built)
    assert json.loads(clean.stdout) == {"up_to_date": True, "scenes": 3, "stale": 0, "concepts": {}}
    _edit_prompt(built, 0, "Another first shot.")
    _delete_clip(built)
    stale = run([S9, "status", "--json"], built, check=False)
    assert stale.returncode == 1
    report = json.loads(stale.stdout)
    assert report["up_to_date"] is False and (report["scenes"], report["stale"]) == (3, 1)
    [entry] = report["concepts"][CONCEPT]["stale"]
    assert report["concepts"][CONCEPT]["batch"] == "b1"
    assert entry["stage"] == "scene@tiny_p1" and entry["scene"] == 1
    assert entry["clip"] == f"outputs/b1/{CONCEPT}/{CONCEPT}_p1_veo_3.1_fast.mp4"
    assert {r["kind"] for r in entry["reasons"]} == {"prompt", "output"}
    assert "prompt entry scenes.0 modified" in [r["message"] for r in entry["reasons"]]
    text = run([S9, "status"], built, check=False)
    assert text.returncode == 1
    assert "tiny (batch b1): 1 of 3 scene(s) stale" in text.stdout
    assert "scene@tiny_p1: prompt entry scenes.0 modified" in text.stdout
    # Targets narrow the check; an unknown one is bad input.
    assert run([S9, "status", "tiny_p2"], built).returncode == 0
    bad = run([S9, "status", "nope"], built, check=False)
    assert bad.returncode == 2 and "nope: no such scene stage or concept" in bad.stderr


@pytest.mark.slow
def test_only_the_stale_scene_is_regenerated(built: Path) -> None:
    _edit_prompt(built, 1, "The keeper climbs the stairs.")
    untouched = {n: (built / f"outputs/b1/{CONCEPT}/{CONCEPT}_p{n}_veo_3.1_fast.mp4").stat().st_mtime_ns
                 for n in (1, 3)}
    result = pipeline.repro(built)
    assert [r.scene_number for r in result.summary.results] == [2] and result.recorded == ["scene@tiny_p2"]
    assert {n: (built / f"outputs/b1/{CONCEPT}/{CONCEPT}_p{n}_veo_3.1_fast.mp4").stat().st_mtime_ns
            for n in (1, 3)} == untouched
    assert dvc_stale(built) == set()


def test_deleted_outputs_are_restored_from_dvc_run_cache(built: Path) -> None:
    _delete_clip(built)
    _modify_clip(built)
    the_plan = pipeline.plan(built)
    assert [p.stage for p in the_plan.restored] == ["scene@tiny_p1", "scene@tiny_p2"] and not the_plan.to_generate
    result = pipeline.repro(built)
    assert result.summary.results == [] and result.restored == ["scene@tiny_p1", "scene@tiny_p2"]
    assert dvc_stale(built) == set() and s9_stale(built) == set()


# -- failures ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_failed_scene_stays_stale_while_the_others_are_recorded(built: Path) -> None:
    recorded_before = lock(built)["scene@tiny_p2"]
    _edit_prompt(built, 0, "New opening.")
    _edit_prompt(built, 2, "New ending.")
    # Scene 2's frame breaks after registration: its stage is stale and cannot be generated.
    (built / FRAMES / f"{CONCEPT}_p2_first_frame.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = run([S9, "repro", "-j", "3"], built, check=False)
    assert result.returncode == 1
    assert "Success rate: 2/3 (67%)" in result.stdout
    assert "Scene 2 failed" in result.stderr and "not a readable image" in result.stderr
    assert "Recorded in dvc.lock: 2 stage(s)" in result.stdout
    assert dvc_stale(built) == stages(2)
    assert s9_stale(built) == stages(2)
    assert lock(built)["scene@tiny_p2"] == recorded_before  # never recorded as up to date


def test_stage_command_refuses_an_out_name_for_another_model(built: Path) -> None:
    """After a model change without `s9 sync`, plain `dvc repro` fails clearly instead of mislabelling."""
    _set_param(built, "video_settings.video_model", "openai/sora-2")
    result = run([DVC, "repro"], built, check=False)
    assert result.returncode != 0
    assert "stage out does not match params.yaml (video_model openai/sora-2" in result.stdout + result.stderr
    assert "run `s9 sync`" in result.stdout + result.stderr
    assert not list((built / f"outputs/b1/{CONCEPT}").glob("*sora*"))  # no clip under the model's new name
    assert not (built / f"outputs/b1/{CONCEPT}/{CONCEPT}_p1_veo_3.1_fast.mp4").exists()  # nor under the old one
    # `s9 status` re-syncs: the new names are what is now stale.
    assert s9_stale(built) == stages(1, 2, 3) == dvc_stale(built)
    assert "tiny_p1_sora_2.mp4" in (built / pipeline.VARS_FILE).read_text()
