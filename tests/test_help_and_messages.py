"""What a person reads before anything runs: `--help`, near-miss model ids, broken YAML, `python -m s9`, and the
setup script staying quiet when nothing changed. Every check goes through the real entry point in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, make_concept

S9 = [sys.executable, "-m", "s9"]


def s9(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*S9, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


def sections(help_text: str) -> dict[str, list[str]]:
    """`--help`'s command sections: title -> command names."""
    found: dict[str, list[str]] = {}
    title = None
    for line in help_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            found[title] = []
        elif title and line.startswith("  ") and line.strip():
            found[title].append(line.split()[0])
    return found


def test_help_separates_user_commands_from_the_ones_dvc_runs(tmp_path: Path) -> None:
    proc = s9("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = sections(proc.stdout)
    assert {"generate", "clip", "repro", "status", "plan", "report", "add"} <= set(found["Commands"])
    assert not {"stage", "resolve", "fake-replicate"} & set(found["Commands"])
    assert found["Run by `dvc repro` (not typed by hand)"] == ["resolve", "stage"]
    assert found["For tests and CI"] == ["fake-replicate"]
    # Every command says what it does in the list (a help text built with `+` once left three of them blank).
    for title in ("Commands", "For tests and CI", "Run by `dvc repro` (not typed by hand)"):
        block = proc.stdout.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]
        assert all(len(row.split()) > 1 for row in block.splitlines()), block


def test_help_shows_every_default(tmp_path: Path) -> None:
    text = " ".join(s9("generate", "--help", cwd=tmp_path).stdout.split())  # unwrap click's columns
    for expected in ("--model MODEL", "[default: (params.yaml video_settings.video_model, else google/veo-3.1-fast)]",
                     "[default: (params.yaml video_settings.max_workers, else 3); 1<=x<=1000]",
                     "[default: (params.yaml video_settings.backend, else offline)]",
                     "[default: (params.yaml video_settings.aspect_ratio, else 16:9)]",
                     "wins over the one read off the prompts path"):
        assert expected in text, (expected, text)
    repro = " ".join(s9("repro", "--help", cwd=tmp_path).stdout.split())
    assert "[default: (params.yaml video_settings.max_workers, else 3); 1<=x<=1000]" in repro
    assert "--new-take" in repro


@pytest.mark.parametrize(("given", "meant"), [
    ("veo-3.1-fast", "google/veo-3.1-fast"),  # the owner left out
    ("sora-2", "openai/sora-2"),
    ("google/veo-3.1-fats", "google/veo-3.1-fast"),  # a typo
    ("kling", "kwaivgi/kling-v2.1"),  # the start of exactly one model's name
])
def test_a_near_miss_model_id_says_which_one_was_meant(workdir: Path, given: str, meant: str) -> None:
    prompts, frames = make_concept(workdir)
    frame = frames / "tiny_p1_first_frame.jpg"
    line = one_error_line(s9("clip", prompts, 1, frame, "--model", given, cwd=workdir))
    assert line.startswith(f"error: --model: unknown model {given!r} (did you mean {meant}? valid: "), line
    # The same model id in params.yaml: the same suggestion, naming the file and key.
    (workdir / "params.yaml").write_text(f"video_settings:\n  video_model: {given}\n")
    line = one_error_line(s9("generate", prompts, "--frames", frames, cwd=workdir))
    assert line.startswith(f"error: params.yaml: video_settings.video_model: unknown model {given!r} "
                           f"(did you mean {meant}? known models: "), line
    assert not (workdir / "outputs").exists()


def test_nothing_close_gets_no_guess(workdir: Path) -> None:
    prompts, frames = make_concept(workdir)
    line = one_error_line(s9("clip", prompts, 1, frames / "tiny_p1_first_frame.jpg", "--model", "acme/zzz",
                             cwd=workdir))
    assert "did you mean" not in line and "valid: openai/sora-2" in line


@pytest.mark.parametrize(("params", "line_no", "says", "quoted"), [
    ("video_settings:\n  video_model: google/veo-3.1-fast\n  aspect_ratio: '16:9'\n   duration_seconds: 4\n",
     4, "while parsing a block mapping at line 2): this line's indentation does not line up with the lines above "
        "it", "'   duration_seconds: 4'"),
    ("video_settings:\n  video_model: google/veo-3.1-fast\n  aspect_ratio: '16:9'\n\tduration_seconds: 4\n",
     4, "tabs cannot indent YAML: use spaces", "'\\tduration_seconds: 4'"),
    ("video_settings:\n  video_model: google/veo-3.1-fast\n  aspect_ratio: \"16:9\n  duration_seconds: 4\n",
     5, "a quote or bracket opened above is never closed", ""),
    ("video_settings:\n  backend: offline\n  backend: replicate\n",
     3, "a key appears twice in the same mapping: keep one", "'  backend: replicate'"),
], ids=["indent", "tab", "open-quote", "duplicate-key"])
def test_invalid_yaml_says_what_is_wrong_on_that_line(workdir: Path, params: str, line_no: int, says: str,
                                                      quoted: str) -> None:
    prompts, frames = make_concept(workdir)
    (workdir / "params.yaml").write_text(params)
    line = one_error_line(s9("generate", prompts, "--frames", frames, cwd=workdir))
    assert line.startswith(f"error: params.yaml: invalid YAML at line {line_no} ("), line
    assert says in line, line
    if quoted:
        assert line.endswith(f"; line {line_no} reads {quoted}"), line
    assert not (workdir / "outputs").exists()


def test_python_dash_m_s9_is_the_s9_command(tmp_path: Path) -> None:
    proc = s9("--version", cwd=tmp_path)
    assert proc.returncode == 0 and re.fullmatch(r"s9, version \S+\n", proc.stdout), proc


def test_setup_script_does_nothing_when_nothing_changed() -> None:
    """The real scripts/setup.sh on this checkout: its stamp matches, so pip is not run (the installed
    metadata is untouched) and nothing is printed."""
    dist_info = next((REPO / ".venv/lib").glob("python3*/site-packages/s9-*.dist-info"))
    before = dist_info.stat().st_mtime_ns
    proc = subprocess.run(["bash", "scripts/setup.sh"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert dist_info.stat().st_mtime_ns == before
    stamp = (REPO / ".venv/.s9-installed").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", stamp)


@pytest.mark.slow
def test_editable_install_prints_no_setuptools_banner(tmp_path: Path) -> None:
    """The cause of the `!!` wall: setuptools' import-hook editable strategy for a flat layout. With the
    package folder declared (`package-dir`), the same `pip install -e` that setup.sh runs prints nothing."""
    project = tmp_path / "s9proj"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (project / name).write_bytes((REPO / name).read_bytes())
    (project / "s9").mkdir()
    (project / "s9" / "__init__.py").write_text('__version__ = "0.1.0"\n')
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The project's pip, installing into the throwaway venv: the build backend runs exactly as in setup.sh.
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--quiet",
                           "--disable-pip-version-check", "--no-deps", "-e", str(project)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    noise = [line for line in proc.stderr.splitlines() if "is ignored: it is neither" not in line]
    assert noise == [], proc.stderr
    pth = list((venv / "lib").glob("python3*/site-packages/__editable__.s9-*.pth"))
    assert len(pth) == 1 and pth[0].read_text().strip() == str(project)
