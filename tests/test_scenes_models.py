"""Scene inputs, params and model specs: pure library behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s9.errors import InputError
from s9.job import build_job
from s9.models import MODELS, get_model
from s9.params import Settings, load_settings
from s9.scenes import load_concept
from tests.conftest import SAMPLE_FRAMES, SAMPLE_PROMPTS, make_concept, make_frame


def write_prompts(tmp_path: Path, data: object, name: str = "c1_scene_prompts.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_sample_concept_loads() -> None:
    concept = load_concept(SAMPLE_PROMPTS)
    assert concept.name == "watchmaker_journey"
    assert [s.number for s in concept.scenes] == [1, 2, 3, 4, 5]
    assert concept.scene(5).duration_seconds is None


def test_concept_name_from_file_name_when_no_field(tmp_path: Path) -> None:
    path = write_prompts(tmp_path, {"scenes": [{"scene_number": 1, "video_prompt": "x"}]}, "my_idea_scene_prompts.json")
    concept = load_concept(path)
    assert concept.name == "my_idea"
    assert concept.scenes[0].audio_background == "" and concept.scenes[0].audio_dialogue == ""


def test_extra_keys_are_ignored(tmp_path: Path) -> None:
    data = {"concept": "ok", "meta": 1, "scenes": [{"scene_number": 1, "video_prompt": "x", "camera": "dolly"}]}
    assert load_concept(write_prompts(tmp_path, data)).name == "ok"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{not json", "invalid JSON at line 1"),
        ([1, 2], "expected a JSON object"),
        ({"concept": "x"}, "field 'scenes' is missing or empty"),
        ({"scenes": []}, "field 'scenes' is missing or empty"),
        ({"scenes": [{"scene_number": 1}]}, "scene 1: field 'video_prompt' is missing"),
        ({"scenes": [{"scene_number": 1, "video_prompt": "  "}]}, "scene 1: field 'video_prompt' must be a non-empty"),
        ({"scenes": [{"video_prompt": "x"}]}, "scene #1: field 'scene_number' must be a whole number"),
        ({"scenes": [{"scene_number": 2, "video_prompt": "x", "duration_seconds": 0}]}, "scene 2: 'duration_seconds'"),
        ({"scenes": [{"scene_number": 2, "video_prompt": "x", "duration_seconds": "8"}]}, "must be a number"),
        ({"scenes": [{"scene_number": 1, "video_prompt": "x", "audio_dialogue": 3}]}, "'audio_dialogue' must be a"),
        ({"scenes": [{"scene_number": 1, "video_prompt": "a"}, {"scene_number": 1, "video_prompt": "b"}]},
         "appears more than once"),
        ({"concept": "../evil", "scenes": [{"scene_number": 1, "video_prompt": "x"}]}, "unsafe concept name"),
        ({"concept": "a/b", "scenes": [{"scene_number": 1, "video_prompt": "x"}]}, "unsafe concept name"),
    ],
)
def test_bad_prompts_name_file_scene_and_field(tmp_path: Path, data: object, expected: str) -> None:
    path = write_prompts(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_concept(path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_prompts_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="scene prompts file not found"):
        load_concept(tmp_path / "nope_scene_prompts.json")


def test_scene_not_in_file_lists_the_scenes() -> None:
    with pytest.raises(InputError, match=r"scene 9 not found \(scenes in file: 1, 2, 3, 4, 5\)"):
        load_concept(SAMPLE_PROMPTS).scene(9)


def test_combined_prompt_leaves_out_empty_parts() -> None:
    concept = load_concept(SAMPLE_PROMPTS)
    one = concept.scene(1).combined_prompt.split("\n\n")
    assert one[0].startswith("A young watchmaker")
    assert one[1].startswith("Background Music: Soft ticking")
    assert one[2].startswith("Narrator (warm")
    assert len(concept.scene(3).combined_prompt.split("\n\n")) == 2  # no dialogue


@pytest.mark.parametrize(
    ("model", "requested", "snapped"),
    [
        ("google/veo-3.1-fast", 7, 8),
        ("google/veo-3.1-fast", 5, 6),
        ("google/veo-3.1-fast", 3, 4),
        ("google/veo-3.1-fast", 30, 8),
        ("google/veo-3-fast", 6, 6),
        ("openai/sora-2", 6, 8),
        ("openai/sora-2", 10, 12),
        ("openai/sora-2", 2.5, 4),
        ("openai/sora-2", 12, 12),
    ],
)
def test_duration_snapping_ties_go_longer(model: str, requested: float, snapped: int) -> None:
    value, warning = get_model(model).snap_duration(requested)
    assert value == snapped
    assert (warning is None) == (requested == snapped)


def test_snap_warning_text_matches_reference() -> None:
    _, warning = get_model("google/veo-3.1-fast").snap_duration(7)
    assert warning == "Duration adjusted from 7s to 8s (Veo 3.1 Fast requirement)"


def test_sora_aspect_mapping() -> None:
    sora = get_model("openai/sora-2")
    assert sora.api_aspect("16:9") == ("landscape", None)
    assert sora.api_aspect("9:16") == ("portrait", None)
    aspect, warning = sora.api_aspect("1:1")
    assert aspect == "landscape" and warning and "landscape" in warning


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(InputError) as info:
        get_model("google/veo-9")
    assert all(model in str(info.value) for model in MODELS)


def test_input_builders_match_reference_schemas() -> None:
    concept = load_concept(SAMPLE_PROMPTS)
    frame = SAMPLE_FRAMES / "watchmaker_journey_p1_first_frame.jpg"
    veo = build_job(concept, 1, frame, Settings())
    assert veo.api_input("https://x/f") == {
        "image": "https://x/f",
        "prompt": concept.scene(1).combined_prompt,
        "duration": 8,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "generate_audio": True,
    }
    assert veo.output.name == "watchmaker_journey_p1_veo_3.1_fast.mp4"
    assert veo.batch == "sample_batch"  # read off the step-7 layout
    sora = build_job(concept, 3, frame, Settings(video_model="openai/sora-2", aspect_ratio="9:16"))
    assert sora.api_input("u") == {
        "prompt": concept.scene(3).combined_prompt,
        "seconds": 8,
        "aspect_ratio": "portrait",
        "input_reference": "u",
    }
    assert (sora.width, sora.height, sora.makes_audio) == (720, 1280, False)
    assert sora.debug_file.as_posix().endswith("debug/scene_3/sora2_p3_prompt.txt")
    fast3 = build_job(concept, 2, frame, Settings(video_model="google/veo-3-fast", aspect_ratio="1:1"))
    assert fast3.output.name == "watchmaker_journey_p2_veo_3_fast.mp4"
    assert (fast3.width, fast3.height, fast3.duration) == (720, 720, 6)


def test_scene_duration_beats_params_and_cli_beats_scene() -> None:
    concept = load_concept(SAMPLE_PROMPTS)
    frame = SAMPLE_FRAMES / "watchmaker_journey_p2_first_frame.jpg"
    assert build_job(concept, 2, frame, Settings(duration_seconds=4)).duration == 6
    assert build_job(concept, 5, frame, Settings(duration_seconds=4)).duration == 4
    assert build_job(concept, 2, frame, Settings(), duration=4).duration == 4


def test_fingerprint_tracks_what_shapes_the_clip(tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path)
    concept = load_concept(prompts)
    frame = frames / "tiny_p1_first_frame.jpg"
    base = build_job(concept, 1, frame, Settings())
    assert build_job(concept, 1, frame, Settings(max_workers=7)).fingerprint == base.fingerprint
    assert build_job(concept, 1, frame, Settings(video_model="google/veo-3-fast")).fingerprint != base.fingerprint
    assert build_job(concept, 2, frame, Settings()).fingerprint != base.fingerprint
    other = make_frame(tmp_path / "other.jpg", color=(1, 2, 3))
    assert build_job(concept, 1, other, Settings()).fingerprint != base.fingerprint


def test_first_frame_must_be_an_image(tmp_path: Path) -> None:
    concept = load_concept(SAMPLE_PROMPTS)
    bogus = tmp_path / "p1.jpg"
    bogus.write_text("not an image")
    with pytest.raises(InputError, match="not a readable image"):
        build_job(concept, 1, bogus, Settings())
    with pytest.raises(InputError, match="not found"):
        build_job(concept, 1, tmp_path / "missing.jpg", Settings())


def test_params_file_defaults_and_errors(tmp_path: Path) -> None:
    settings = load_settings(Path(__file__).resolve().parents[1] / "params.yaml")
    assert settings.video_model == "google/veo-3.1-fast"
    assert (settings.aspect_ratio, settings.duration_seconds, settings.resolution) == ("16:9", 8, "720p")
    assert (settings.generate_audio, settings.backend, settings.max_workers) == (True, "offline", 3)
    bad = tmp_path / "params.yaml"
    for text, expected in [
        ("video_settings:\n  video_model: foo/bar\n", "video_settings.video_model: unknown model 'foo/bar'"),
        ("video_settings:\n  aspect_ratio: '4:3'\n", "invalid aspect ratio '4:3' (valid: 16:9, 9:16, 1:1)"),
        ("video_settings:\n  aspect_ratio: 969\n", 'aspect ratio 969 (valid: 16:9, 9:16, 1:1; write it as text'),
        ("video_settings:\n  aspect_ratio: 1.78\n", 'aspect ratio 1.78 (valid: 16:9, 9:16, 1:1; write it'),
        ("video_settings:\n  duration_seconds: -1\n", "'duration_seconds' must be a number of seconds > 0"),
        ("video_settings:\n  duration_seconds: soon\n", "'duration_seconds' must be a number of seconds > 0"),
        ("video_settings:\n  backend: cloud\n", "unknown backend 'cloud'"),
        ("video_settings:\n  max_workers: 0\n", "max_workers: must be a whole number"),
        ("video_settings:\n  colour: red\n", "video_settings.colour: unknown key"),
        ("video_settings: [1\n", "invalid YAML"),
    ]:
        bad.write_text(text)
        with pytest.raises(InputError) as info:
            load_settings(bad)
        assert expected in str(info.value), text
        assert str(bad) in str(info.value)
        # The "write it as text" hint is only for a value that really is a number.
        assert ("write it as text" in str(info.value)) == ("969" in expected or "1.78" in expected)


def test_params_read_as_yaml_1_2_like_dvc_writes_them(tmp_path: Path) -> None:
    """`dvc exp run -S` rewrites params.yaml as YAML 1.2, dropping the quotes of "16:9"; that must still read."""
    path = tmp_path / "params.yaml"
    path.write_text("video_settings:\n  aspect_ratio: 16:9\n  resolution: 720p\n  generate_audio: true\n")
    settings = load_settings(path)
    assert (settings.aspect_ratio, settings.resolution, settings.generate_audio) == ("16:9", "720p", True)
    path.write_text("video_settings:\n  generate_audio: yes\n")  # YAML 1.1's boolean, 1.2's string
    with pytest.raises(InputError, match="generate_audio: must be true or false"):
        load_settings(path)


def test_fast_yaml_reads_what_dvcs_parser_reads() -> None:
    """dvc.lock files are read with libyaml set to YAML 1.2's rules; the values (and their types) must be the
    ones ruamel, DVC's parser, gives, or s9 and DVC would disagree about what changed."""
    from s9.yamlio import parse_yaml, parse_yaml_fast

    def typed(value: object) -> object:
        if isinstance(value, dict):
            return {k: typed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [typed(v) for v in value]
        return (type(value).__name__, value)

    corpus = [
        "a: 16:9\nb: yes\nc: 017\nd: 0o17\ne: 1e3\nf: 1_000\ng: .inf\nh: ~\ni: 2001-12-14\nj: true\nk: 0x1F\n"
        "l: -0b101\nm: 1.5\nn: '8'\no: 720p\np: [1, 2.0, null]\nq: {x: 'y'}\nr: 12:30:00\ns: +12\nt: .5\nu: 1.\n"
        "v: NO\nw: Off\nx: -.inf\ny: 'multi\n  line'\nz: |\n  block\n  text\n",
        *(p.read_text() for p in Path(__file__).resolve().parents[1].glob("pipelines/*/*/dvc.lock")),
    ]
    for text in corpus:
        assert typed(parse_yaml_fast(text)) == typed(parse_yaml(text))
