"""Issue 9: hostile inputs through the real `s9` entry point.

The contract: bad input is exactly one `error: …` line on stderr, exit 2 and nothing written; a scene that
cannot be generated is exit 1 after the other scenes finished. Each test here is one case of the issue.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from s9.errors import InputError
from s9.inputfile import read_input_text
from s9.scenes import load_concept
from s9.video import probe
from tests.conftest import make_concept, make_frame

S9 = [sys.executable, "-m", "s9"]
MEMORY_CAP = 1 << 30  # a normal clip peaks near 130 MB; a runaway read or repr() hits this instead of the machine


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def s9(*args: str | Path, cwd: Path, timeout: float = 60, merged: bool = False) -> subprocess.CompletedProcess:
    """The real entry point, with a memory cap and a timeout so a regression fails the test, not the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATE_")}
    return subprocess.run(
        [*S9, *(str(a) for a in args)], cwd=cwd, capture_output=not merged, text=True, timeout=timeout,
        preexec_fn=_capped, env={**env, "COLUMNS": "200"}, stdin=subprocess.DEVNULL,
        **({"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if merged else {}),
    )


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_dir()}


def assert_input_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit 2, stdout empty, exactly one `error: …` line on stderr holding every expected part."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    for part in expected:
        assert part in lines[0], (part, lines[0])
    return lines[0]


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(repo, prompts, frames): a 3-scene concept under tmp_path/inputs, run from the empty tmp_path/repo."""
    repo = tmp_path / "repo"
    repo.mkdir()
    prompts, frames = make_concept(tmp_path / "inputs")
    return repo, prompts, frames


def _scenes(*numbers: int) -> list[dict]:
    return [{"scene_number": n, "video_prompt": f"shot {n}", "duration_seconds": 4} for n in numbers]


# -- 1. every batch name is checked, wherever it comes from ------------------------------------------------
@pytest.mark.parametrize("command", ["clip", "generate"])
@pytest.mark.parametrize("batch", ["../escaped", "ABSOLUTE", "a/b", ".hidden"])
def test_batch_option_cannot_leave_the_outputs_folder(tiny: tuple[Path, Path, Path], tmp_path: Path,
                                                       command: str, batch: str) -> None:
    repo, prompts, frames = tiny
    batch = str(tmp_path / "abs") if batch == "ABSOLUTE" else batch
    before = files_under(tmp_path)
    args = [prompts, 1, frames / "tiny_p1_first_frame.jpg"] if command == "clip" else [prompts, "--frames", frames]
    proc = s9(command, *args, "--batch", batch, cwd=repo)
    assert_input_error(proc, f"error: --batch: unsafe batch name {batch[:30]!r}"[:-1])
    assert files_under(tmp_path) == before


def test_batch_read_off_the_prompts_path_is_checked(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    prompts, frames = make_concept(tmp_path / "inputs", batch="b\nx", scenes=_scenes(1))
    before = files_under(tmp_path)
    proc = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=repo)
    assert_input_error(proc, "unsafe batch name 'b\\nx'", "pass --batch")
    assert files_under(tmp_path) == before
    # The way out the message names: an explicit, safe --batch.
    ok = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", "--batch", "b1", cwd=repo)
    assert ok.returncode == 0, ok.stderr
    assert probe(repo / "outputs/b1/tiny/tiny_p1_veo_3.1_fast.mp4").duration == pytest.approx(4, abs=0.1)


# -- 2. a name is matched whole: no trailing newline -------------------------------------------------------
def test_concept_name_with_trailing_newline_is_refused(tmp_path: Path) -> None:
    prompts = tmp_path / "abc_scene_prompts.json"
    prompts.write_text(json.dumps({"concept": "abc\n", "scenes": _scenes(1)}))
    frame = make_frame(tmp_path / "f.jpg")
    before = files_under(tmp_path)
    proc = s9("clip", prompts, 1, frame, cwd=tmp_path)
    assert_input_error(proc, "field 'concept': unsafe concept name 'abc\\n'")
    assert files_under(tmp_path) == before


def test_params_batch_with_trailing_newline_is_refused(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, prompts, frames = tiny
    (repo / "params.yaml").write_text('output:\n  batch: "abc\\n"\n')
    before = files_under(tmp_path)
    proc = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", "--batch", "ok", cwd=repo)
    assert_input_error(proc, "params.yaml: output.batch: unsafe batch name 'abc\\n'")
    assert files_under(tmp_path) == before


# -- 3. unknown keys at every level of params.yaml ---------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("video_setings:\n  video_model: openai/sora-2\n",
     "params.yaml: video_setings: unknown key (known: budget, output, video_settings)"),
    ("output:\n  video_output_dir: clips\n",
     "params.yaml: output.video_output_dir: unknown key (known: batch, video_outputs_dir)"),
    ("budget:\n  max_spend: 3\n",
     "params.yaml: budget.max_spend: unknown key (known: max_spend_usd, price_per_second_usd)"),
    ("video_settings:\n  colour: red\n", "params.yaml: video_settings.colour: unknown key (known: aspect_ratio,"),
])
def test_unknown_params_key_is_refused(tiny: tuple[Path, Path, Path], tmp_path: Path, text: str,
                                       expected: str) -> None:
    repo, prompts, frames = tiny
    (repo / "params.yaml").write_text(text)
    before = files_under(tmp_path)
    assert_input_error(s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=repo), expected)
    assert files_under(tmp_path) == before


# -- 4. YAML alias bomb; values are type-checked and echoed short ------------------------------------------
def _alias_bomb(levels: int = 9) -> str:
    lines = ["video_settings:", "  video_model:", '    - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels + 1):
        lines.append(f"    - &l{n} [" + ", ".join([f"*l{n - 1}"] * 8) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "expected"), [
    (_alias_bomb(), "YAML anchors and aliases are not allowed"),
    ("video_settings:\n  video_model: &m google/veo-3-fast\n", "YAML anchors and aliases are not allowed"),
    ("video_settings:\n  video_model: [1, 2]\n", "video_settings.video_model: must be text, got a list"),
    ("video_settings:\n  backend: {a: 1}\n", "video_settings.backend: must be text, got a mapping"),
    ("video_settings:\n  aspect_ratio: " + "9" * 4000 + "\n", "video_settings.aspect_ratio: invalid aspect ratio"),
    ("video_settings:\n  aspect_ratio: " + "9" * 5000 + "\n", "params.yaml: invalid YAML: a value cannot be read"),
    ("video_settings:\n  resolution: '" + "x" * 100_000 + "'\n", "video_settings.resolution: invalid resolution"),
])
def test_params_values_are_type_checked_and_echoed_short(tiny: tuple[Path, Path, Path], text: str,
                                                         expected: str) -> None:
    repo, prompts, frames = tiny
    (repo / "params.yaml").write_text(text)
    line = assert_input_error(s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=repo, timeout=30),
                              expected)
    assert len(line) < 400
    assert not (repo / "outputs").exists()


# -- 5. the prompts path must be a regular file of sane size -----------------------------------------------
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "huge"])
def test_prompts_path_must_be_a_regular_file_of_at_most_64_mb(tiny: tuple[Path, Path, Path], tmp_path: Path,
                                                               kind: str) -> None:
    repo, _, frames = tiny
    if kind == "dev-zero":
        path, expected = Path("/dev/zero"), "/dev/zero: not a regular file"
    elif kind == "fifo":
        path, expected = tmp_path / "fifo_scene_prompts.json", "fifo_scene_prompts.json: not a regular file"
        os.mkfifo(path)
    else:
        path, expected = tmp_path / "huge_scene_prompts.json", "huge_scene_prompts.json: larger than 64 MB"
        with path.open("wb") as handle:
            handle.truncate(65 << 20)  # sparse: costs no disk, but reading it whole would cost the memory
    before = files_under(tmp_path)
    proc = s9("clip", path, 1, frames / "tiny_p1_first_frame.jpg", cwd=repo, timeout=20)
    assert_input_error(proc, expected)
    assert files_under(tmp_path) == before


def test_a_file_whose_size_fstat_understates_is_read_whole(tmp_path: Path) -> None:
    # /proc files are regular files that fstat() sizes as 0: the read goes on past the stated size.
    text = read_input_text(Path("/proc/self/status"), "status file")
    assert text.startswith("Name:") and "VmRSS" in text
    small = tmp_path / "small.json"
    small.write_text('{"a": "é"}', encoding="utf-8")
    assert read_input_text(small, "scene prompts file") == '{"a": "é"}'
    with pytest.raises(InputError, match="larger than"):  # and bounded by the limit all the same
        read_input_text(Path("/proc/self/status"), "status file", limit=512)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_params_path_must_be_a_regular_file(tiny: tuple[Path, Path, Path], tmp_path: Path, kind: str) -> None:
    repo, prompts, frames = tiny
    path = Path("/dev/zero") if kind == "dev-zero" else tmp_path / "params.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    proc = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", "--params", path, cwd=repo, timeout=20)
    assert_input_error(proc, f"{path}: not a regular file")


# -- 6. deeply nested JSON and YAML ------------------------------------------------------------------------
def test_deeply_nested_prompts_json_is_an_input_error(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, _, frames = tiny
    deep = tmp_path / "deep_scene_prompts.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    proc = s9("clip", deep, 1, frames / "tiny_p1_first_frame.jpg", cwd=repo, timeout=30)
    assert_input_error(proc, "deep_scene_prompts.json: invalid JSON: nested too deeply")


def test_prompts_json_number_too_long_to_convert_is_an_input_error(tiny: tuple[Path, Path, Path],
                                                                    tmp_path: Path) -> None:
    repo, _, frames = tiny
    long = tmp_path / "long_scene_prompts.json"
    long.write_text('{"scenes": [{"scene_number": ' + "1" * 5000 + ', "video_prompt": "x"}]}')
    proc = s9("clip", long, 1, frames / "tiny_p1_first_frame.jpg", cwd=repo)
    assert_input_error(proc, "long_scene_prompts.json: invalid JSON: a value cannot be read")


def test_deeply_nested_params_yaml_is_an_input_error(tiny: tuple[Path, Path, Path]) -> None:
    repo, prompts, frames = tiny
    (repo / "params.yaml").write_text("video_settings:\n  video_model: " + "[" * 100_000 + "]" * 100_000 + "\n")
    proc = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=repo, timeout=60)
    assert_input_error(proc, "params.yaml: invalid YAML: nested too deeply")


# -- 7. click's usage errors are one line too --------------------------------------------------------------
def test_usage_errors_are_one_line_naming_the_option(tiny: tuple[Path, Path, Path]) -> None:
    repo, prompts, frames = tiny
    frame = frames / "tiny_p1_first_frame.jpg"
    cases = [
        (["clip", prompts, "0", frame], "error: SCENE_NUMBER: 0 is not in the range x>=1"),
        (["generate", prompts, "--frames", frames, "--workers", "0"],
         "error: --workers: 0 is not in the range 1<=x<=1000"),
        (["clip", prompts, "1", frame, "--model", "google/veo-9"],
         "error: --model: unknown model 'google/veo-9' (did you mean google/veo-3.1? valid: openai/sora-2, "
         "google/veo-3-fast, google/veo-3.1-fast"),
        (["clip", prompts, "1", frame, str(frames)], "error: OUTPUT_PATH: "),
        (["generate", prompts], "error: --frames: missing"),
        (["clip", prompts, "1", frame, "--bogus"], "error: --bogus: no such option"),
        (["nosuchcommand"], "error: no such command 'nosuchcommand'"),
        (["clip", prompts, "1", frame, "--model", "a\nb"], "error: --model: unknown model 'a\\nb' (valid: "),
    ]
    for args, expected in cases:
        line = assert_input_error(s9(*args, cwd=repo))
        assert line.startswith(expected), (args, line)
    assert not (repo / "outputs").exists()


# -- 8. one unreadable first frame skips that scene in `s9 generate`; `s9 clip` refuses it ----------------
def test_generate_skips_a_scene_with_a_bad_frame_up_front_and_makes_the_rest(tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path, scenes=_scenes(1, 2, 3))
    (frames / "tiny_p2_first_frame.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (frames / "tiny_p3_first_frame.jpg").unlink()
    proc = s9("generate", prompts, "--frames", frames, "--model", "openai/sora-2", cwd=tmp_path, merged=True)
    assert proc.returncode == 1, proc.stdout
    lines = proc.stdout.splitlines()
    bad = next(i for i, line in enumerate(lines) if line.startswith("[tiny] ✗ Scene 2: "))
    missing = next(i for i, line in enumerate(lines) if line.startswith("[tiny] ✗ Scene 3: "))
    made = next(i for i, line in enumerate(lines) if line.startswith("[tiny] ✓ Scene 1: "))
    assert max(bad, missing) < made  # reported before anything is generated
    assert "tiny_p2_first_frame.jpg: first frame for scene 2 is not a readable image" in lines[bad]
    assert lines[bad].endswith("; skipping") and lines[missing].endswith("; skipping")
    assert "first frame for scene 3 not found" in lines[missing]
    assert "Success rate: 1/3 (33%)" in lines
    out = tmp_path / "outputs/b1/tiny"
    assert probe(out / "tiny_p1_sora_2.mp4").duration == pytest.approx(4, abs=0.1)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "debug/scene_1/receipt.json", "debug/scene_1/sora2_p1_prompt.txt", "tiny_p1_sora_2.mp4"]  # nothing for 2, 3


def test_generate_with_a_bad_frame_and_bad_input_is_still_one_line(tmp_path: Path) -> None:
    """A skipped scene is announced only once no input error can follow: exit 2 stays exactly one line."""
    prompts, frames = make_concept(tmp_path, scenes=_scenes(1, 2))
    (frames / "tiny_p2_first_frame.jpg").write_bytes(b"junk")
    before = files_under(tmp_path)
    proc = s9("generate", prompts, "--frames", frames, "--backend", "replicate", cwd=tmp_path)  # and no token
    assert_input_error(proc, "REPLICATE_API_TOKEN")
    assert files_under(tmp_path) == before


def test_clip_with_a_bad_frame_stays_exit_2(tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path, scenes=_scenes(1))
    (frames / "tiny_p1_first_frame.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", cwd=tmp_path)
    assert_input_error(proc, "first frame for scene 1 is not a readable image")
    assert not (tmp_path / "outputs").exists()


def test_scene_input_problem_is_the_per_scene_check(tmp_path: Path) -> None:
    """The library call the pipeline makes per scene: the problem as one line, or None; nothing written."""
    from s9.job import scene_input_problem

    prompts, frames = make_concept(tmp_path, scenes=_scenes(1, 2))
    concept = load_concept(prompts)
    good = frames / "tiny_p1_first_frame.jpg"
    assert scene_input_problem(concept, 1, good) is None
    (frames / "tiny_p2_first_frame.jpg").write_bytes(b"junk")
    assert "first frame for scene 2 is not a readable image" in scene_input_problem(
        concept, 2, frames / "tiny_p2_first_frame.jpg")
    assert "first frame for scene 1 not found" in scene_input_problem(concept, 1, frames / "nope.jpg")
    assert "scene 7 not found" in scene_input_problem(concept, 7, good)
    assert "not a regular file" in scene_input_problem(concept, 1, frames)


# -- the 40-megapixel first frame --------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(8200, 5000), (12000, 8000), (20000, 10000)])  # 41, 96 and 200 megapixels
def test_first_frame_over_40_megapixels_is_refused_not_decoded(tmp_path: Path, size: tuple[int, int]) -> None:
    prompts, frames = make_concept(tmp_path, scenes=_scenes(1, 2))
    big = frames / "tiny_p1_first_frame.jpg"
    Image.new("1", size).save(big, format="PNG")  # a tiny file that decodes to a huge bitmap
    proc = s9("clip", prompts, 1, big, cwd=tmp_path)
    assert_input_error(proc, "first frame for scene 1 is too large", "over 40 megapixels")
    assert "DecompressionBomb" not in proc.stderr
    # In a whole concept that scene is skipped and the other is made.
    whole = s9("generate", prompts, "--frames", frames, "--model", "openai/sora-2", cwd=tmp_path)
    assert whole.returncode == 1
    assert "DecompressionBomb" not in whole.stderr
    assert "[tiny] ✗ Scene 1: " in whole.stderr and "over 40 megapixels" in whole.stderr
    assert "Success rate: 1/2 (50%)" in whole.stdout


# -- 12. every ✗ and ⚠ line names the concept; a write failure names the clip ------------------------------
def _no_space(limit: int) -> None:
    _capped()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then a write past the limit fails with EFBIG, like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_failure_lines_name_the_concept_and_the_clip(tmp_path: Path) -> None:
    prompts_a, frames_a = make_concept(tmp_path, name="alpha", scenes=_scenes(1, 2))
    prompts_b, frames_b = make_concept(tmp_path, name="beta", scenes=_scenes(1, 2))
    for concept in ("alpha", "beta"):  # a folder where scene 2's clip goes: that scene fails to be written
        (tmp_path / f"outputs/b1/{concept}/{concept}_p2_sora_2.mp4").mkdir(parents=True)
    failures = []
    for concept, prompts, frames in (("alpha", prompts_a, frames_a), ("beta", prompts_b, frames_b)):
        proc = s9("generate", prompts, "--frames", frames, "--model", "openai/sora-2", "--duration", "5",
                  cwd=tmp_path)
        assert proc.returncode == 1
        assert f"[{concept}] ⚠ scenes 1-2: Duration adjusted from 5s to 4s (Sora 2 requirement)" in \
            proc.stderr.splitlines()
        [line] = [x for x in proc.stderr.splitlines() if "✗" in x]
        assert line == f"[{concept}] ✗ Scene 2 failed: outputs/b1/{concept}/{concept}_p2_sora_2.mp4: Is a directory"
        failures.append(line)
    assert failures[0] != failures[1]


def test_no_space_left_names_the_clip_not_the_temp_file(tmp_path: Path) -> None:
    prompts, frames = make_concept(tmp_path, scenes=_scenes(1))
    proc = subprocess.run([*S9, "clip", str(prompts), "1", str(frames / "tiny_p1_first_frame.jpg")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: _no_space(50_000))
    assert proc.returncode == 1, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("[tiny] ✗ Scene 1 failed: outputs/b1/tiny/tiny_p1_veo_3.1_fast.mp4: "), line
    assert ".tmp" not in line
    assert [p.name for p in (tmp_path / "outputs/b1/tiny").iterdir() if p.is_file()] == []
