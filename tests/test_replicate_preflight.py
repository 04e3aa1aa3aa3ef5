# ruff: noqa: F401, F811 - pytest fixtures imported from tests.fakeapi (used as arguments)
"""Refusing before spending, the models and continuity -- all on `FakeReplicate` through the real `replicate`
client, and through the real `s9` entry point (its own process) where the behaviour is the CLI's.

The fake serves each model's schema from its own table (a second opinion on s9's specs and snapshots);
`schema_patches` and `gone_models` make the live API differ from what s9 ships, as the real one may.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s9.errors import InputError
from s9.job import build_concept_jobs, build_job
from s9.journal import Journal
from s9.models import MODELS, get_model
from s9.models.schema import snapshot_schema
from s9.runner import run_jobs
from s9.scenes import load_concept
from s9.video import probe
from tests.conftest import make_concept
from tests.fakeapi import (
    CREATE,
    SCHEMA,
    UPLOAD,
    backend,
    check_clip,
    hits,
    jobs_for,
    s9,
    scenes,
    server,
    settings,
    write_params,
)

# -- the schema preflight --------------------------------------------------------------------------


def test_schema_mismatch_is_refused_before_anything_is_uploaded(server, workdir: Path) -> None:
    # The reference says Veo takes 1:1; this "live" schema says otherwise.
    server.config.schema_patches = {"google/veo-3.1-fast": {"aspect_ratio": {"choices": ["16:9", "9:16"]}}}
    prompts, frames = make_concept(workdir, scenes=scenes(3))
    write_params(workdir, aspect_ratio="1:1")
    code, out, err = s9("generate", prompts, "--frames", frames, cwd=workdir)
    assert code == 2, err
    assert err.splitlines() == [
        'error: google/veo-3.1-fast, tiny scene 1: aspect_ratio = \'1:1\' is not accepted by its live schema of '
        f'{json.loads((workdir / ".s9/schemas/google__veo-3.1-fast.json").read_text())["date"]} '
        '(allowed: one of "16:9", "9:16")'
    ]
    assert hits(server, SCHEMA) == 1 and hits(server, UPLOAD) == 0 and hits(server, CREATE) == 0
    assert not (workdir / "outputs").exists() and Journal().entries() == {}
    # The live schema is cached for a day: the next run refuses without asking the API again.
    server.reset()
    assert s9("generate", prompts, "--frames", frames, cwd=workdir)[0] == 2
    assert hits(server, SCHEMA) == 0 and server.stats()["total"] == 1  # the token check only


def test_a_field_the_live_schema_dropped_is_refused(server, workdir: Path) -> None:
    server.config.schema_patches = {"google/veo-3.1-fast": {"generate_audio": None}}
    s = settings()
    [job] = jobs_for(workdir, s, scenes=scenes(1))
    with pytest.raises(InputError, match=r"generate_audio = True is not accepted by its live schema .* \(allowed: "
                                         r"no such input \(the schema has: prompt, image, duration,"):
        backend(s).preflight([job])
    assert hits(server, UPLOAD) == 0


def test_a_job_never_preflighted_is_still_refused_before_its_upload(server, workdir: Path) -> None:
    server.config.schema_patches = {"google/veo-3.1-fast": {"duration": {"choices": [8]}}}
    s = settings()
    jobs = jobs_for(workdir, s, scenes=scenes(2))
    summary = run_jobs(jobs, backend(s), workers=2)  # as a caller that skips `preflight` would
    assert [r.ok for r in summary.results] == [False, False]
    assert all("duration = 4 is not accepted" in r.error for r in summary.results)
    assert hits(server, UPLOAD) == 0 and hits(server, CREATE) == 0


@pytest.mark.parametrize(("model", "status"), [("openai/sora-2", 410), ("google/veo-3-fast", 404)])
def test_a_gone_model_is_one_line_naming_it_and_the_alternatives(server, workdir: Path, model: str,
                                                                  status: int) -> None:
    server.config.gone_models = {model: status}
    prompts, frames = make_concept(workdir, scenes=scenes(2))
    write_params(workdir, video_model=model, aspect_ratio="16:9")
    code, out, err = s9("generate", prompts, "--frames", frames, cwd=workdir)
    assert code == 2
    lines = err.splitlines()
    line = lines[-1]
    assert line.startswith(f"error: {model} is no longer available on Replicate (")
    assert f"(HTTP {status})" in line and "alternatives: google/veo-3.1-fast, google/veo-3.1" in line
    assert model not in line.split("alternatives:")[1]
    if model == "openai/sora-2":
        # Its failure mode says why: the shutdown OpenAI announced.
        assert "deprecated" in line and "Sora 2 video API" in line and "shut down on 2026-09-24" in line
    assert hits(server, UPLOAD) == 0 and hits(server, CREATE) == 0


def test_sora_warns_of_its_shutdown_but_still_runs_while_the_api_has_it(server, workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    write_params(workdir, video_model="openai/sora-2", aspect_ratio="16:9")
    code, out, err = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=workdir)
    assert code == 0, err
    assert "[tiny] ⚠ scene 1: openai/sora-2: OpenAI's Sora 2 video API" in err
    assert "expect its predictions to fail" in err


def test_offline_runs_check_the_shipped_snapshot(workdir: Path) -> None:
    data = scenes(1)
    data[0]["seed"] = 2**33  # beyond the schema's maximum
    prompts, frames = make_concept(workdir, scenes=data)
    code, out, err = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", "--backend", "offline",
                        cwd=workdir)
    assert code == 2
    assert err == ("error: google/veo-3.1-fast, tiny scene 1: seed = 8589934592 is not accepted by its schema "
                   "snapshot of 2026-11-20 (allowed: an integer from 0 to 4294967295)\n")
    assert not (workdir / "outputs").exists()


def test_unknown_scene_keys_are_a_warning_naming_the_scene(server, workdir: Path) -> None:
    data = scenes(2)
    data[1].update(negative_prompt="no text on screen", seed=7)
    prompts, frames = make_concept(workdir, scenes=data)
    write_params(workdir, video_model="openai/sora-2", aspect_ratio="16:9")
    code, out, err = s9("generate", prompts, "--frames", frames, cwd=workdir)
    assert code == 0, err
    assert "[tiny] ⚠ scene 2: Sora 2 has no 'negative_prompt' input; the scene's negative_prompt is not sent" in err
    assert "[tiny] ⚠ scene 2: Sora 2 has no 'seed' input" in err
    assert all(set(p["input"]) == {"prompt", "seconds", "aspect_ratio", "input_reference"}
               for p in server.predictions())


def test_scene_keys_reach_models_whose_schema_has_them(server, workdir: Path) -> None:
    data = scenes(2)
    data[0].update(negative_prompt="no text on screen", seed=1234)
    s = settings()
    jobs = jobs_for(workdir, s, scenes=data)
    b = backend(s)
    b.preflight(jobs)
    assert run_jobs(jobs, b, workers=2).ok
    by_prompt = {p["input"]["prompt"].split(":")[0]: p["input"] for p in server.predictions()}
    assert (by_prompt["Scene 1"]["negative_prompt"], by_prompt["Scene 1"]["seed"]) == ("no text on screen", 1234)
    assert "negative_prompt" not in by_prompt["Scene 2"] and "seed" not in by_prompt["Scene 2"]


# -- more models -----------------------------------------------------------------------------------

NEW_MODELS = [
    # model, settings, expected input beyond prompt and the image, image field, end-frame field
    ("google/veo-3.1", {"aspect_ratio": "9:16"},
     {"duration": 4, "resolution": "720p", "aspect_ratio": "9:16", "generate_audio": True}, "image", "last_frame"),
    ("kwaivgi/kling-v2.1", {"resolution": "1080p"}, {"mode": "pro", "duration": 5}, "start_image", "end_image"),
    ("minimax/hailuo-02", {}, {"duration": 6, "resolution": "768p"}, "first_frame_image", "last_frame_image"),
    ("wan-video/wan-2.5-i2v", {}, {"duration": 5, "resolution": "720p"}, "image", None),
]


@pytest.mark.parametrize(("model", "extra", "expected", "image_field", "end_field"), NEW_MODELS,
                         ids=[m[0] for m in NEW_MODELS])
def test_each_new_model_end_to_end_with_exact_payload(server, workdir: Path, model: str, extra: dict,
                                                      expected: dict, image_field: str, end_field: str | None) -> None:
    s = settings(video_model=model, continuity="next_first_frame", **extra)
    jobs = jobs_for(workdir, s, scenes=scenes(2))
    b = backend(s)
    b.preflight(jobs)
    summary = run_jobs(jobs, b, workers=2)
    assert summary.ok, [r.error for r in summary.results]
    for job in jobs:
        check_clip(job)
        assert job.output.name == f"tiny_p{job.scene.number}_{get_model(model).suffix}.mp4"
    records = sorted(server.predictions(), key=lambda p: p["input"]["prompt"])
    first, last = (r["input"] for r in records)
    image = first[image_field]
    assert image.startswith(f"{server.base_url}/v1/files/")
    want = {"prompt": jobs[0].prompt, image_field: image, **expected}
    if end_field:  # scene 1 ends on scene 2's first frame; the last scene has no end frame
        want[end_field] = last[image_field]
    assert first == want and first == jobs[0].api_input(image, want.get(end_field))
    assert end_field is None or end_field not in last
    assert {r["model"] for r in records} == {model}


def test_cross_field_rules_are_checked_before_spending(workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(2))
    concept = load_concept(prompts)
    # Kling takes an end frame only in pro mode (1080p).
    with pytest.raises(InputError, match=r"^kwaivgi/kling-v2.1, tiny scene 1: end_image = '.*/tiny_p2_first_frame"
                                         r".jpg' is not accepted \(allowed: only with mode \"pro\""):
        build_concept_jobs(concept, frames, settings(video_model="kwaivgi/kling-v2.1", continuity="next_first_frame"))
    # Hailuo makes 10 s clips only at 768p.
    long = settings(video_model="minimax/hailuo-02", resolution="1080p", duration_seconds=10)
    with pytest.raises(InputError, match=r"^minimax/hailuo-02, tiny scene 1: duration = 10 is not accepted "
                                         r"\(allowed: 6 at this resolution; 10 s only at 768p"):
        build_job(concept, 1, frames / "tiny_p1_first_frame.jpg", long, duration=10)


def test_specs_agree_with_their_snapshots() -> None:
    for spec in MODELS.values():
        schema = snapshot_schema(spec)
        duration = "seconds" if spec.id == "openai/sora-2" else "duration"
        assert tuple(schema.enum(duration)) == spec.durations, spec.id
        assert spec.image_field in schema.properties, spec.id
        assert spec.last_frame_field is None or spec.last_frame_field in schema.properties, spec.id
        assert all(key in schema.properties for key in spec.extras), spec.id
        for aspect in spec.aspects:
            for resolution in ("720p", "1080p"):
                own, _ = spec.api_aspect(aspect)
                res, _ = spec.api_resolution(resolution)
                inp = spec.build_input(prompt="p", image="https://x/a.jpg", duration=spec.durations[0], aspect=own,
                                       resolution=res, generate_audio=True, last_frame=None,
                                       extras={"negative_prompt": "n", "seed": 1})
                assert schema.problems(inp) == [], (spec.id, aspect, resolution)


# -- continuity ------------------------------------------------------------------------------------


def test_continuity_ends_each_scene_on_the_next_first_frame(server, workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(3))
    write_params(workdir, continuity="next_first_frame")
    code, out, err = s9("generate", prompts, "--frames", frames, "--workers", "3", cwd=workdir)
    assert code == 0, err
    records = {p["input"]["prompt"].split(":")[0]: p for p in server.predictions()}
    s1, s2, s3 = (records[f"Scene {n}"]["input"] for n in (1, 2, 3))
    # Scene N's last_frame is exactly the uploaded first frame of scene N+1; the last scene has none.
    assert s1["last_frame"] == s2["image"] and s2["last_frame"] == s3["image"] and "last_frame" not in s3
    assert len({s1["image"], s2["image"], s3["image"]}) == 3
    assert hits(server, UPLOAD) == 3  # each image once, though scenes 2 and 3 are each sent twice
    assert [records[f"Scene {n}"]["render"]["end_frame"] for n in (1, 2, 3)] == ["file", "file", None]
    for n in (1, 2, 3):
        assert probe(workdir / f"outputs/b1/tiny/tiny_p{n}_veo_3.1_fast.mp4").duration == pytest.approx(4, abs=0.1)
    debug = (workdir / "outputs/b1/tiny/debug/scene_1/veo3_p1_prompt.txt").read_text()
    assert f"last_frame: {s2['image']}" in debug  # the debug file shows exactly what was sent


def test_job_images_list_every_image_sent(workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(3))
    concept = load_concept(prompts)
    on = settings(continuity="next_first_frame")
    jobs, _ = build_concept_jobs(concept, frames, on)
    assert [job.images for job in jobs] == [
        (frames / "tiny_p1_first_frame.jpg", frames / "tiny_p2_first_frame.jpg"),
        (frames / "tiny_p2_first_frame.jpg", frames / "tiny_p3_first_frame.jpg"),
        (frames / "tiny_p3_first_frame.jpg",),
    ]
    # Only the chosen scenes run, but each still ends on its successor in the file.
    [two], _ = build_concept_jobs(concept, frames, on, scene_numbers=[2])
    assert two.images[1] == frames / "tiny_p3_first_frame.jpg"
    off, _ = build_concept_jobs(concept, frames, settings())
    assert [job.images for job in off] == [(job.first_frame,) for job in off]
    # The end frame shapes the clip: its bytes are in the fingerprint (continuity off keeps the old one).
    assert jobs[2].fingerprint == off[2].fingerprint and jobs[0].fingerprint != off[0].fingerprint
    (frames / "tiny_p2_first_frame.jpg").write_bytes((frames / "tiny_p3_first_frame.jpg").read_bytes())
    again, _ = build_concept_jobs(concept, frames, on)
    assert again[0].fingerprint != jobs[0].fingerprint
    # A model without an end frame: continuity is a warning, and the clips end freely.
    fast3, _ = build_concept_jobs(concept, frames, settings(video_model="google/veo-3-fast",
                                                            continuity="next_first_frame"))
    assert all(len(job.images) == 1 for job in fast3)
    assert "tiny scene 1: Veo 3 Fast takes no end frame, so this clip ends freely (continuity)" in fast3[0].warnings
    # A missing next frame: that clip ends freely, with a warning naming the file.
    (frames / "tiny_p3_first_frame.jpg").unlink()
    jobs, skipped = build_concept_jobs(concept, frames, on)
    assert list(skipped) == [3] and "first frame for scene 3 not found" in skipped[3]
    assert jobs[1].images == (frames / "tiny_p2_first_frame.jpg",)
    assert any("scene 3's first frame" in w and "is missing" in w for w in jobs[1].warnings)


def test_the_offline_backend_sends_the_end_frame_too(workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(2))
    write_params(workdir, backend="offline", continuity="next_first_frame", aspect_ratio="16:9")
    code, out, err = s9("generate", prompts, "--frames", frames, cwd=workdir)
    assert code == 0, err
    debug = (workdir / "outputs/b1/tiny/debug/scene_1/veo3_p1_prompt.txt").read_text()
    assert "last_frame: offline" in debug and "last_frame" not in (
        workdir / "outputs/b1/tiny/debug/scene_2/veo3_p2_prompt.txt").read_text()
    assert Journal().entries() == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"scenes": [{"scene_number": 1, "video_prompt": "x", "seed": "7"}]}', "field 'seed' must be a whole number"),
        ('{"scenes": [{"scene_number": 1, "video_prompt": "x", "seed": true}]}', "field 'seed' must be a whole number"),
        ('{"scenes": [{"scene_number": 1, "video_prompt": "x", "seed": -1}]}', "field 'seed' must be a whole number"),
        ('{"scenes": [{"scene_number": 1, "video_prompt": "x", "negative_prompt": 3}]}',
         "field 'negative_prompt' must be a string"),
    ],
)
def test_bad_scene_keys_are_input_errors(workdir: Path, text: str, expected: str) -> None:
    path = workdir / "c_scene_prompts.json"
    path.write_text(text)
    with pytest.raises(InputError, match=expected):
        load_concept(path)


def test_continuity_is_checked_in_params(workdir: Path) -> None:
    from s9.params import load_settings

    (workdir / "params.yaml").write_text("video_settings:\n  continuity: next_frame\n")
    with pytest.raises(InputError, match=r"video_settings.continuity: unknown continuity 'next_frame' \(valid: none, "
                                         r"next_first_frame\)"):
        load_settings()
    (workdir / "params.yaml").write_text("video_settings:\n  continuity: next_first_frame\n")
    assert load_settings().continuity == "next_first_frame"
