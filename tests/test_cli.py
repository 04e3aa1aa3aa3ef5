"""The `s9 clip` / `s9 generate` commands end to end on the offline backend, and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from click.testing import CliRunner

from s9.cli import cli
from s9.video import probe
from tests.conftest import make_concept, make_frame

S9 = [sys.executable, "-m", "s9.cli"]


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def tiny(workdir: Path) -> tuple[Path, Path]:
    return make_concept(workdir)


def test_clip_writes_clip_and_debug_file_in_reference_layout(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    code, out, err = run("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg")
    assert code == 0, err
    clip = workdir / "outputs/b1/tiny/tiny_p1_veo_3.1_fast.mp4"
    info = probe(clip)
    assert (info.width, info.height, info.video_codec, info.has_audio) == (1280, 720, "h264", True)
    assert abs(info.duration - 4) < 0.1
    debug = (workdir / "outputs/b1/tiny/debug/scene_1/veo3_p1_prompt.txt").read_text()
    assert debug.startswith("=" * 80 + "\nVEO 3.1 FAST PROMPT (EXACT SENT TO API)\n" + "=" * 80)
    for line in [
        "Model: google/veo-3.1-fast",
        "Scene Number: 1",
        "First Frame Image: s8/b1/tiny/tiny_p1_first_frame.jpg",
        "Duration: 4 seconds",
        "Aspect Ratio: 16:9",
        "Resolution: 720p",
        "Generate Audio: True",
        "COMBINED PROMPT:",
        "BREAKDOWN:",
        "Video Prompt: Scene 1: a lighthouse at dusk, slow push-in.",
        "Audio Background: Waves and a soft cello.",
        'Audio Dialogue: Keeper: "Light number 1."',
        "First Frame Image URI: offline",
        "FULL API INPUT DATA:",
        "image: offline",
        "duration: 4",
        "generate_audio: True",
    ]:
        assert line in debug.splitlines(), line
    assert str(workdir) not in debug  # portable: no absolute path of this machine
    sent = json.loads(debug.split("API INPUT JSON:\n", 1)[1])
    assert sent["prompt"] == (
        "Scene 1: a lighthouse at dusk, slow push-in.\n\n"
        "Background Music: Waves and a soft cello.\n\n"
        'Keeper: "Light number 1."'
    )
    assert "tiny_p1_veo_3.1_fast.mp4" in out


@pytest.mark.parametrize(
    ("model", "aspect", "size", "audio", "suffix", "debug_name"),
    [
        ("openai/sora-2", "9:16", (720, 1280), False, "sora_2", "sora2_p2_prompt.txt"),
        ("google/veo-3-fast", "1:1", (720, 720), True, "veo_3_fast", "veo3_p2_prompt.txt"),
    ],
)
def test_clip_honours_each_models_contract(
    tiny: tuple[Path, Path], workdir: Path, model: str, aspect: str, size: tuple[int, int], audio: bool,
    suffix: str, debug_name: str,
) -> None:
    prompts, frames = tiny
    out = workdir / "elsewhere" / "clip.mp4"
    code, _, err = run("clip", prompts, 2, frames / "tiny_p2_first_frame.jpg", out, "--model", model,
                       "--aspect-ratio", aspect)
    assert code == 0, err
    info = probe(out)
    assert (info.width, info.height) == size
    assert info.has_audio is audio
    assert abs(info.duration - 4) < 0.1
    assert (workdir / "elsewhere/debug/scene_2" / debug_name).is_file()
    assert suffix  # the suffix only shows in default names; covered in the generate test


def test_clip_duration_option_snaps_with_warning(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    code, _, err = run("clip", prompts, 3, frames / "tiny_p3_first_frame.jpg", "x.mp4", "--model", "openai/sora-2",
                       "--duration", "5")
    assert code == 0
    assert "Duration adjusted from 5s to 4s (Sora 2 requirement)" in err
    assert abs(probe(workdir / "x.mp4").duration - 4) < 0.1


def test_offline_clip_is_deterministic(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    frame = frames / "tiny_p1_first_frame.jpg"
    assert run("clip", prompts, 1, frame, "a.mp4")[0] == 0
    assert run("clip", prompts, 1, frame, "b.mp4")[0] == 0
    assert (workdir / "a.mp4").read_bytes() == (workdir / "b.mp4").read_bytes()


@pytest.mark.slow
def test_generate_all_scenes_in_parallel_with_summary(workdir: Path) -> None:
    prompts, frames = make_concept(workdir, name="five", scenes=[
        {"scene_number": n, "video_prompt": f"shot {n}", "audio_background": "", "audio_dialogue": "",
         "duration_seconds": 4} for n in range(1, 6)
    ])
    (frames / "five_p4_first_frame.jpg").unlink()  # a missing first frame skips that scene only
    code, out, err = run("generate", prompts, "--frames", frames, "--workers", "3", "--model", "openai/sora-2")
    assert code == 1
    assert "five_p4_first_frame.jpg: first frame for scene 4 not found; skipping" in err
    assert "[five] ✗ Scene 4: " in err
    assert "Parallel workers: 3" in out
    assert "Files generated: 8 total" in out
    assert "Success rate: 4/5 (80%)" in out
    names = sorted(p.name for p in (workdir / "outputs/b1/five").glob("*.mp4"))
    assert names == [f"five_p{n}_sora_2.mp4" for n in (1, 2, 3, 5)]
    for name in names:
        assert probe(workdir / "outputs/b1/five" / name).has_audio is False


def test_generate_subset_into_out_dir(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    code, out, err = run("generate", prompts, "--frames", frames, "--scenes", "1,3", "--out", "clips")
    assert code == 0, err
    assert sorted(p.name for p in (workdir / "clips").glob("*.mp4")) == [
        "tiny_p1_veo_3.1_fast.mp4", "tiny_p3_veo_3.1_fast.mp4"]
    assert "Success rate: 2/2 (100%)" in out


def test_real_entry_point_version_and_help(workdir: Path) -> None:
    version = subprocess.run([*S9, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("s9, version")
    for command in ("clip", "generate"):
        help_text = subprocess.run([*S9, command, "--help"], capture_output=True, text=True, check=True).stdout
        assert "--model" in help_text and "--backend" in help_text


def _bad_inputs(root: Path) -> list[tuple[list[str], str]]:
    prompts, frames = make_concept(root, name="bad")
    frame = str(frames / "bad_p1_first_frame.jpg")
    broken = root / "broken_scene_prompts.json"
    broken.write_text("{oops")
    no_scenes = root / "none_scene_prompts.json"
    no_scenes.write_text(json.dumps({"concept": "none"}))
    no_prompt = root / "np_scene_prompts.json"
    no_prompt.write_text(json.dumps({"scenes": [{"scene_number": 1, "audio_background": "x"}]}))
    unsafe = root / "unsafe_scene_prompts.json"
    unsafe.write_text(json.dumps({"concept": "../../etc", "scenes": [{"scene_number": 1, "video_prompt": "x"}]}))
    not_image = root / "not_image.jpg"
    not_image.write_text("hello")
    truncated = root / "truncated.jpg"
    truncated.write_bytes((frames / "bad_p1_first_frame.jpg").read_bytes()[:600])
    locked = root / "locked"
    locked.mkdir()
    (locked / "out").write_text("a file where a folder should be")
    p = str(prompts)
    return [
        (["clip", str(root / "missing_scene_prompts.json"), "1", frame], "scene prompts file not found"),
        (["clip", str(broken), "1", frame], "invalid JSON at line 1"),
        (["clip", str(no_scenes), "1", frame], "field 'scenes' is missing or empty"),
        (["clip", str(no_prompt), "1", frame], "scene 1: field 'video_prompt' is missing"),
        (["clip", p, "9", frame], "scene 9 not found (scenes in file: 1, 2, 3)"),
        (["clip", p, "1", str(root / "nope.jpg")], "first frame for scene 1 not found"),
        (["clip", p, "1", str(not_image)], "not a readable image"),
        (["clip", p, "1", str(truncated)], "truncated.jpg: first frame for scene 1 is not a readable image"),
        (["clip", p, "1", frame, "--model", "google/veo-9"], "error: --model: unknown model 'google/veo-9' ("),
        (["clip", p, "1", frame, "--aspect-ratio", "4:3"], "error: --aspect-ratio: '4:3' is not one of"),
        (["clip", p, "1", frame, "--duration", "0"], "'duration_seconds' must be a number of seconds > 0"),
        (["clip", p, "1", frame, "--duration", "soon"], "error: --duration: 'soon' is not a valid float"),
        (["clip", str(unsafe), "1", frame], "unsafe concept name"),
        (["clip", p, "1", frame, str(locked / "out" / "x.mp4")], "output directory is not writable"),
        (["generate", p, "--frames", str(root / "no_frames_here")], "first frames folder not found"),
        (["generate", p, "--frames", str(frames), "--scenes", "1,x"], "error: --scenes: expected scene numbers"),
    ]


def test_every_bad_input_is_one_line_exit_2_nothing_written(workdir: Path) -> None:
    cases = _bad_inputs(workdir)
    before = files_under(workdir)
    for args, expected in cases:
        proc = subprocess.run([*S9, *args], capture_output=True, text=True, cwd=workdir)
        assert proc.returncode == 2, (args, proc.stderr)
        assert expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # click's usage errors too
    assert files_under(workdir) == before
    assert not (workdir / "outputs").exists()


def test_bad_params_file_is_exit_2(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    (workdir / "params.yaml").write_text("video_settings:\n  video_model: acme/video\n")
    code, _, err = run("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg")
    assert code == 2
    assert "params.yaml: video_settings.video_model: unknown model 'acme/video' (known models:" in err
    assert not (workdir / "outputs").exists()


def test_params_in_cwd_are_the_defaults(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    (workdir / "params.yaml").write_text(
        "video_settings:\n  video_model: openai/sora-2\n  aspect_ratio: '9:16'\noutput:\n  video_outputs_dir: clips\n")
    code, _, err = run("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg")
    assert code == 0, err
    info = probe(workdir / "clips/b1/tiny/tiny_p1_sora_2.mp4")
    assert (info.width, info.height, info.has_audio) == (720, 1280, False)


def test_unreadable_frame_in_generate_skips_only_that_scene(workdir: Path) -> None:
    prompts, frames = make_concept(workdir)
    (frames / "tiny_p2_first_frame.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code, out, err = run("generate", str(prompts), "--frames", str(frames))
    assert code == 1
    assert "tiny_p2_first_frame.jpg: first frame for scene 2 is not a readable image" in err
    assert "Success rate: 2/3 (67%)" in out
    assert not (workdir / "outputs/b1/tiny/debug/scene_2").exists()  # nothing sent or written for it


def test_no_temp_files_left_and_clip_replaced_atomically(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    frame = frames / "tiny_p1_first_frame.jpg"
    target = workdir / "out" / "c.mp4"
    target.parent.mkdir()
    target.write_bytes(b"old clip")
    assert run("clip", prompts, 1, frame, target)[0] == 0
    with av.open(str(target)) as container:
        assert container.streams.video
    assert [p.name for p in target.parent.iterdir() if p.is_file()] == ["c.mp4"]


def test_frame_outside_repo_is_recorded_relative_to_prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    prompts, _ = make_concept(tmp_path / "inputs")
    frame = make_frame(tmp_path / "elsewhere" / "f.jpg")
    monkeypatch.chdir(repo)
    code, _, err = run("clip", prompts, 1, frame, "c.mp4")
    assert code == 0, err
    debug = (repo / "debug/scene_1/veo3_p1_prompt.txt").read_text()
    assert "First Frame Image: ../../../../elsewhere/f.jpg" in debug
    assert os.sep + "elsewhere" not in debug.replace("../", "")


def _run_on_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the real entry point with a pseudo-terminal as stdout/stderr, as a person at a shell would."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([*S9, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(tiny: tuple[Path, Path], workdir: Path) -> None:
    prompts, frames = tiny
    args = ["generate", str(prompts), "--frames", str(frames), "--model", "openai/sora-2"]
    code, screen = _run_on_terminal(args, workdir)
    assert code == 0, screen
    assert "generating" in screen and "\x1b[" in screen  # rich's live bar, drawn with escape codes
    piped = subprocess.run([*S9, *args], cwd=workdir, capture_output=True, text=True)
    assert piped.returncode == 0
    assert "generating" not in piped.stdout + piped.stderr and "\x1b[" not in piped.stdout + piped.stderr
