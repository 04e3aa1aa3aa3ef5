# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""Team use of the pipeline, one test per problem seen (issue 8): experiments, model switches, exact
dependencies, branches, status that writes nothing, and commands that run at the same time.
Real git and DVC in temp dirs; the Replicate backend on the shipped fake server where timing matters."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import make_concept
from test_pipeline_helpers import (
    BIN,
    CONCEPT,
    DVC,
    ENV,
    OUT,
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


def commit(root: Path, message: str = "work") -> None:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", message], root)


def tracked(root: Path) -> dict[str, bytes]:
    """What git tracks (or would add), with its bytes."""
    names = run(["git", "ls-files", "-co", "--exclude-standard"], root).stdout.split()
    return {n: (root / n).read_bytes() for n in names if (root / n).is_file()}


def set_params(root: Path, **values: object) -> None:
    path = root / "params.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in values.items():
        data["video_settings"][key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def clips_in(root: Path) -> list[str]:
    return sorted(p.name for p in (root / OUT).glob("*.mp4"))


def both_clean(root: Path) -> bool:
    return dvc_stale(root) == set() and pipeline.status(root).up_to_date


# -- 1. dvc exp run -S, in every mode, and s9 exp run for the model ----------------------------------------
@pytest.mark.slow
def test_dvc_exp_run_set_param_in_every_mode(built: Path) -> None:
    commit(built, "clips")
    # Workspace: DVC rewrites params.yaml as YAML 1.2 (the quotes of "16:9" go); s9 reads it the same.
    run([DVC, "exp", "run", "-n", "workers5", "-S", "video_settings.max_workers=5"], built)
    assert "aspect_ratio: 16:9\n" in (built / "params.yaml").read_text()
    assert both_clean(built)
    # Queued, then run by two workers at once: each in its own temp copy with plain `dvc repro`.
    run([DVC, "exp", "run", "--queue", "-n", "portrait", "-S", "video_settings.aspect_ratio=9:16"], built)
    run([DVC, "exp", "run", "--queue", "-n", "silent", "-S", "video_settings.generate_audio=false"], built)
    run([DVC, "queue", "start", "-j", "2"], built)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        queue = run([DVC, "queue", "status"], built).stdout
        if "Running" not in queue and "Queued" not in queue:
            break
        time.sleep(2)
    assert "Failed" not in queue and queue.count("Success") == 2, queue
    # A temporary folder.
    run([DVC, "exp", "run", "--temp", "-n", "long", "-S", "video_settings.duration_seconds=8"], built)
    shown = json.loads(run([DVC, "exp", "show", "--json"], built).stdout)
    names = {exp["name"]: exp for base in shown for exp in (base.get("experiments") or [])
             for exp in (exp.get("revs") or [exp])}
    assert {"workers5", "portrait", "silent", "long"} <= set(names), sorted(names)
    metrics_file = f"{PIPELINE}/metrics.json"
    portrait = names["portrait"]["data"]["metrics"][metrics_file]["data"]
    assert portrait["clips"] == 3 and portrait["failed_scenes"] == 0
    # Applying an experiment leaves both status commands clean (its clips come from the cache).
    run([DVC, "exp", "apply", "portrait"], built)
    assert "aspect_ratio: 9:16" in (built / "params.yaml").read_text()
    assert both_clean(built)


@pytest.mark.slow
def test_s9_exp_run_compares_models(built: Path) -> None:
    commit(built, "veo clips")
    result = run([S9, "exp", "run", "-n", "sora", "-S", "video_settings.video_model=openai/sora-2"], built)
    assert "Saved experiment sora" in result.stdout
    assert clips_in(built) == [f"{CONCEPT}_p{n}_sora_2.mp4" for n in (1, 2, 3)]  # the veo clips left (cached)
    assert sorted(p.name for p in (built / OUT / "debug/scene_1").iterdir()) == ["receipt.json", "sora2_p1_prompt.txt"]
    assert both_clean(built)
    shown = run([DVC, "exp", "show", "--no-pager", "--md"], built).stdout
    assert "sora" in shown
    # Back to the first model: nothing is generated, the clips come back from DVC's cache.
    back = pipeline.exp_run(built, ["video_settings.video_model=google/veo-3.1-fast"])
    assert back.repro is not None and back.repro.summary.results == [] and len(back.repro.restored) == 3
    assert clips_in(built) == [f"{CONCEPT}_p{n}_veo_3.1_fast.mp4" for n in (1, 2, 3)]
    # Queued: the workspace is left exactly as it was, and the queued run (plain `dvc repro`) works.
    commit(built, "back to veo")
    before = tracked(built)
    run([S9, "exp", "run", "--queue", "-n", "veo3", "-S", "video_settings.video_model=google/veo-3-fast"], built)
    assert tracked(built) == before
    run([DVC, "queue", "start"], built)
    deadline = time.monotonic() + 180
    while "Success" not in (queue := run([DVC, "queue", "status"], built).stdout) and time.monotonic() < deadline:
        assert "Failed" not in queue, queue
        time.sleep(2)
    assert "Success" in queue


# -- 3. a model change with plain dvc repro; no leftovers --------------------------------------------------
def test_model_change_then_plain_dvc_repro_fails_before_deleting_anything(built: Path) -> None:
    set_params(built, video_model="openai/sora-2")
    result = run([DVC, "repro"], built, check=False)
    assert result.returncode != 0
    assert "run `s9 sync`" in result.stdout + result.stderr
    assert clips_in(built) == [f"{CONCEPT}_p{n}_veo_3.1_fast.mp4" for n in (1, 2, 3)]  # nothing deleted
    status = run([S9, "status"], built, check=False)
    assert status.returncode == 1 and "`s9 sync`" in status.stdout


@pytest.mark.slow
def test_after_a_model_switch_the_folder_holds_only_the_new_clips(built: Path) -> None:
    set_params(built, video_model="openai/sora-2")
    synced = pipeline.sync(built)
    assert sorted(synced.tidied) == [clip(n) for n in (1, 2, 3)]  # debug folders keep their paths
    run([DVC, "repro"], built)
    assert clips_in(built) == [f"{CONCEPT}_p{n}_sora_2.mp4" for n in (1, 2, 3)]
    assert sorted(p.name for p in (built / OUT / "debug/scene_1").iterdir()) == ["receipt.json", "sora2_p1_prompt.txt"]
    assert both_clean(built)


# -- 4. dependencies are exactly what shapes a clip --------------------------------------------------------
@pytest.mark.slow
def test_a_new_default_duration_reaches_only_scenes_without_their_own(fresh: Path) -> None:
    data = json.loads((fresh / PROMPTS).read_text())
    del data["scenes"][1]["duration_seconds"]
    (fresh / PROMPTS).write_text(json.dumps(data, indent=2))
    run([S9, "repro"], fresh)
    commit(fresh, "clips")
    set_params(fresh, duration_seconds=8)
    assert s9_stale(fresh) == stages(2)
    assert dvc_stale(fresh) == {inputs_stage()}
    out = run([DVC, "repro"], fresh).stdout
    assert out.count("Running stage") == 2 and f"{PIPELINE}/dvc.yaml:p2" in out
    assert both_clean(fresh)
    # `dvc params diff` names the scene and the field that changed.
    diff = run([DVC, "params", "diff"], fresh).stdout
    assert f"{PIPELINE}/inputs.json  p2.input.duration" in diff and "p1.input" not in diff


@pytest.mark.slow
def test_sora_stages_do_not_depend_on_resolution_or_audio(fresh: Path) -> None:
    set_params(fresh, video_model="openai/sora-2")
    run([S9, "repro"], fresh)
    entry = json.loads((fresh / f"{PIPELINE}/inputs.json").read_text())["p1"]
    assert set(entry["input"]) == {"prompt", "seconds", "aspect_ratio"}
    set_params(fresh, resolution="1080p", generate_audio=False)
    assert s9_stale(fresh) == set() and dvc_stale(fresh) == {inputs_stage()}
    out = run([DVC, "repro"], fresh).stdout
    assert out.count("Running stage") == 1  # the inputs stage re-resolves; no clip is made again
    assert both_clean(fresh)


# -- 5. two branches, two concepts, one merge --------------------------------------------------------------
@pytest.mark.slow
def test_branches_adding_different_concepts_merge_without_conflicts(built: Path, tmp_path: Path) -> None:
    commit(built, "tiny")
    for branch, name in (("harbor-branch", "harbor"), ("dunes-branch", "dunes")):
        run(["git", "checkout", "-q", "-b", branch, "main"], built)
        prompts, frames = make_concept(tmp_path / name, name, batch="b1")
        run([S9, "add", str(prompts), str(frames)], built)
        run([S9, "repro"], built)
        commit(built, f"add {name}")
    merged = run(["git", "merge", "--no-edit", "harbor-branch"], built, check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "CONFLICT" not in merged.stdout
    run([DVC, "checkout"], built)  # the other branch's clips, from the shared cache
    assert both_clean(built)
    assert {d.ref.name for d in pipeline.declared(built)} == {CONCEPT, "harbor", "dunes"}


# -- 6. status writes nothing; after checking out an older lock, the fix is dvc checkout -------------------
@pytest.mark.slow
def test_status_writes_nothing_and_knows_dvc_checkout(built: Path) -> None:
    commit(built, "first")
    first = run(["git", "rev-parse", "HEAD"], built).stdout.strip()
    data = json.loads((built / PROMPTS).read_text())
    data["scenes"][1]["video_prompt"] = "The keeper climbs the stairs."
    (built / PROMPTS).write_text(json.dumps(data, indent=2))
    run([S9, "repro"], built)
    commit(built, "second")
    set_params(built, video_model="openai/sora-2")  # a pending change the status reports
    before = tracked(built)
    assert run([S9, "status"], built, check=False).returncode == 1
    assert run([S9, "status", "--json", "--no-outputs"], built, check=False).returncode == 1
    assert tracked(built) == before
    run(["git", "checkout", "-q", "--", "params.yaml"], built)
    run(["git", "checkout", "-q", first], built)
    status = run([S9, "status"], built, check=False)
    assert status.returncode == 1 and "1 of 3 scene(s) stale: run `dvc checkout`" in status.stdout
    run([DVC, "checkout"], built)
    assert both_clean(built)


# -- 7 and 8. commands at the same time --------------------------------------------------------------------
def _slow_repro(root: Path, server: object) -> subprocess.Popen[str]:
    set_params(root, backend="replicate")
    env = {**ENV, "REPLICATE_API_TOKEN": "r8_test", "REPLICATE_BASE_URL": server.base_url}  # type: ignore[attr-defined]
    return subprocess.Popen([S9, "repro", "-j", "3"], cwd=root, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _wait_for_creates(server: object, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(server.predictions()) < count:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the repro never created its predictions"
        time.sleep(0.1)


@pytest.mark.slow
def test_writing_commands_are_refused_while_repro_runs(fresh: Path, tmp_path: Path) -> None:
    from s9.fake import FakeConfig, FakeReplicate

    prompts, frames = make_concept(tmp_path / "src", "harbor", batch="b1")
    with FakeReplicate(config=FakeConfig(latency=25.0)) as server:
        proc = _slow_repro(fresh, server)
        _wait_for_creates(server, 3)
        before = tracked(fresh)
        for args in (["remove", CONCEPT], ["add", str(prompts), str(frames)], ["sync"],
                     ["exp", "run", "-S", "video_settings.max_workers=2"]):
            refused = run([S9, *args], fresh, check=False)
            assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
            assert "DVC repository is busy" in refused.stderr and "Nothing was changed" in refused.stderr
            assert len(refused.stderr.splitlines()) == 1
        assert tracked(fresh) == before
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert both_clean(fresh)


@pytest.mark.slow
def test_a_prompt_edited_while_repro_runs_is_not_recorded_as_current(fresh: Path) -> None:
    from s9.fake import FakeConfig, FakeReplicate

    with FakeReplicate(config=FakeConfig(latency=4.0)) as server:
        proc = _slow_repro(fresh, server)
        _wait_for_creates(server, 3)
        data = json.loads((fresh / PROMPTS).read_text())
        data["scenes"][1]["video_prompt"] = "Edited while the clip was being made."
        (fresh / PROMPTS).write_text(json.dumps(data, indent=2))
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert f"scene 2 ({PIPELINE}/dvc.yaml:p2): an input changed while it was generated; not recorded" in err
    assert "p2" not in lock(fresh) and {"p1", "p3"} <= set(lock(fresh))
    assert s9_stale(fresh) == stages(2)
    assert stages(2) <= dvc_stale(fresh)
    run([S9, "repro"], fresh, env={"REPLICATE_API_TOKEN": "r8_test", "REPLICATE_BASE_URL": "http://127.0.0.1:9"},
        check=False)  # the fake server is gone: what matters is what was recorded before
