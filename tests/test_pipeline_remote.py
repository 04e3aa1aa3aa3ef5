# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""Sharing generated clips: `dvc push` to a local-directory remote, a fresh `git clone`, `dvc pull`: clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline_helpers import BIN, CONCEPT, built, dvc_stale, run

S9 = str(BIN / "s9")
DVC = str(BIN / "dvc")


@pytest.mark.slow
def test_push_clone_pull_is_up_to_date_without_generating(built: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    run([DVC, "remote", "add", "-d", "shared", str(remote)], built)
    run(["git", "add", "-A"], built)
    run(["git", "commit", "-q", "-m", "clips"], built)
    assert "9 files pushed" in run([DVC, "push"], built).stdout  # 3 clips, 3 debug files, 3 .dir listings
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(built), str(clone)], tmp_path)
    assert not (clone / "outputs").exists() or not list((clone / "outputs").rglob("*.mp4"))

    before = run([S9, "status", "--json"], clone, check=False)
    assert before.returncode == 1  # clips are not there yet, nor in the clone's cache
    assert json.loads(before.stdout)["stale"] == 3
    # CI without the clips: dvc.lock matches prompts, frames and params, so nothing needs regenerating.
    assert run([S9, "status", "--no-outputs"], clone).stdout.strip() == "All 3 scene(s) up to date."
    (clone / "data/s8_first_frames/b1/tiny/tiny_p2_first_frame.jpg").write_bytes(
        (clone / "data/s8_first_frames/b1/tiny/tiny_p1_first_frame.jpg").read_bytes())
    changed = run([S9, "status", "--no-outputs", "--json"], clone, check=False)
    assert changed.returncode == 1
    assert [s["stage"] for s in json.loads(changed.stdout)["concepts"][CONCEPT]["stale"]] == ["scene@tiny_p2"]
    run(["git", "checkout", "--", "data"], clone)

    run([DVC, "pull"], clone)
    assert run([S9, "status"], clone).stdout.strip() == "All 3 scene(s) up to date."
    assert dvc_stale(clone) == set()
    for n in (1, 2, 3):
        name = f"outputs/b1/{CONCEPT}/{CONCEPT}_p{n}_veo_3.1_fast.mp4"
        assert (clone / name).read_bytes() == (built / name).read_bytes()
    # Nothing to generate: a repro in the clone is a no-op.
    assert "nothing to do" in run([S9, "repro"], clone).stdout
