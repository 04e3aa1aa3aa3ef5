# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""Fresh takes (`--new-take`) through the real entry points: a new clip for unchanged inputs, its cost said
first; in the pipeline recorded in dvc.lock (not restored from, nor written to, DVC's run cache); on the
replicate backend a new prediction whose journal entry keeps what the old one cost."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import make_concept
from fakeapi import CREATE, TOKEN, hits, scenes
from test_pipeline_helpers import BIN, ENV, built

from s9.fake import FakeConfig, FakeReplicate
from s9.journal import Journal
from s9.spend import actual_cost

S9 = [sys.executable, "-m", "s9"]
CLIP = "outputs/b1/tiny/tiny_p{n}_veo_3.1_fast.mp4"
LOCK = "pipelines/b1/tiny/dvc.lock"


def s9(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*S9, *map(str, args)], cwd=cwd, env={**ENV, **(env or {})}, capture_output=True,
                          text=True, timeout=300)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def locked_out(root: Path, n: int) -> str:
    stage = yaml.safe_load((root / LOCK).read_text())["stages"][f"p{n}"]
    return next(o["md5"] for o in stage["outs"] if o["path"].endswith(".mp4"))


def run_cache_entries(root: Path) -> list[Path]:
    runs = root / ".dvc/cache/runs"
    return sorted(p for p in runs.rglob("*") if p.is_file()) if runs.is_dir() else []


def test_repro_new_take_needs_targets(built: Path) -> None:
    before = (built / LOCK).read_text()
    proc = s9("repro", "--new-take", cwd=built)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: --new-take: name the scenes to take again (e.g. `s9 repro "
                                        "--new-take tiny_p2`); it never applies to every scene"]
    assert (built / LOCK).read_text() == before


def test_repro_new_take_records_a_new_clip_for_unchanged_inputs(built: Path) -> None:
    clips = {n: built / CLIP.format(n=n) for n in (1, 2, 3)}
    before = {n: md5(p) for n, p in clips.items()}
    inputs = (built / "pipelines/b1/tiny/inputs.json").read_text()
    runs = run_cache_entries(built)
    assert len(runs) == 3  # one per scene, from the first repro
    plan = s9("plan", "--new-take", "tiny_p2", "--json", cwd=built)
    assert plan.returncode == 0, plan.stderr
    [item] = json.loads(plan.stdout)["scenes"]
    assert (item["key"], item["how"], item["reasons"][0]["kind"]) == ("tiny_p2", "generate", "take")

    proc = subprocess.run([*S9, "repro", "--new-take", "tiny_p2"], cwd=built, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)  # one stream: the order as seen
    out = proc.stdout
    assert proc.returncode == 0, out
    # Its cost, said before anything was generated.
    said = out.index("[tiny] fresh take of scene 2 (google/veo-3.1-fast, 4 s, offline): $0.00")
    assert said < out.index("Fresh takes: 1 scene(s), estimated $0.00") < out.index("[tiny] ✓ Scene 2: ")
    assert "Recorded in dvc.lock: 1 scene stage(s)" in out
    after = {n: md5(p) for n, p in clips.items()}
    assert after[2] != before[2] and after[1] == before[1] and after[3] == before[3]
    assert locked_out(built, 2) == after[2]  # dvc.lock says the take is the current clip
    assert (built / "pipelines/b1/tiny/inputs.json").read_text() == inputs  # the inputs did not change
    assert "Take: 1 (a fresh take of unchanged inputs, --new-take)" in \
        (built / "outputs/b1/tiny/debug/scene_2/veo3_p2_prompt.txt").read_text()
    assert run_cache_entries(built) == runs  # no second answer to "these inputs made which clip?"
    # Both status commands agree it is up to date; a plain repro keeps the take.
    assert s9("status", cwd=built).returncode == 0
    dvc = subprocess.run([str(BIN / "dvc"), "status", "--json"], cwd=built, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert json.loads(dvc.stdout or "{}") == {}, dvc.stdout
    again = s9("repro", cwd=built)
    assert again.returncode == 0 and "Every scene is up to date: nothing to do." in again.stdout
    assert md5(clips[2]) == after[2]
    # A second take is take 2: different bytes again.
    second = s9("repro", "--new-take", "tiny_p2", cwd=built)
    assert second.returncode == 0, second.stderr
    assert md5(clips[2]) not in (before[2], after[2])
    assert "Take: 2 " in (built / "outputs/b1/tiny/debug/scene_2/veo3_p2_prompt.txt").read_text()
    # The take is in DVC's cache: `dvc checkout` brings it back, not the original.
    taken = md5(clips[2])
    clips[2].unlink()
    subprocess.run([str(BIN / "dvc"), "checkout", "-q"], cwd=built, env=ENV, check=True, timeout=300)
    assert md5(clips[2]) == taken


def test_new_take_on_replicate_creates_a_new_prediction_and_keeps_the_old_charge(workdir: Path) -> None:
    prompts, frames = make_concept(workdir, scenes=scenes(1))
    frame = frames / "tiny_p1_first_frame.jpg"
    args = ["clip", prompts, 1, frame, "--backend", "replicate", "--aspect-ratio", "1:1"]
    with FakeReplicate(config=FakeConfig(latency=0.2)) as server:
        env = {"REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": server.base_url, "REPLICATE_POLL_INTERVAL": "0.1"}
        assert s9(*args, cwd=workdir, env=env).returncode == 0
        assert s9(*args, cwd=workdir, env=env).returncode == 0  # unchanged: the paid prediction is reused
        assert hits(server, CREATE) == 1
        took = s9(*args, "--new-take", cwd=workdir, env=env)
        assert took.returncode == 0, took.stderr
        assert ("[tiny] fresh take of unchanged inputs: scene 1 (take 1): new prediction(s), estimated $0.60 "
                "(replicate, google/veo-3.1-fast)") in took.stderr
        assert hits(server, CREATE) == 2
        records = server.predictions()
        # The same input both times: a take changes nothing that is sent.
        assert records[0]["input"]["prompt"] == records[1]["input"]["prompt"]
        [(fingerprint, entry)] = Journal(workdir / ".s9/journal").entries().items()
        assert (entry.prediction_id, entry.take) == (records[1]["id"], 1)
        assert [e["prediction_id"] for e in entry.earlier or []] == [records[0]["id"]]  # the old charge is kept
        assert actual_cost([fingerprint], workdir) == 1.2  # both predictions: 2 x 4 s x $0.15
        # An ordinary rerun now follows the take's prediction (resumes it): nothing new is created.
        assert s9(*args, cwd=workdir, env=env).returncode == 0
        assert hits(server, CREATE) == 2
    debug = (workdir / "outputs/b1/tiny/debug/scene_1/veo3_p1_prompt.txt").read_text()
    assert "Take:" not in debug  # the ordinary rerun's debug file: what it sent, no take
