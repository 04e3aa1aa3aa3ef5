# ruff: noqa: F401, F811 - pytest fixtures imported from other test modules (used as arguments)
"""Shards on CI runners, coordinated only through the DVC remote (`s9 repro --shard K/N`).

Three clones run their shards at the same time against one S3-compatible remote (moto, on loopback) and the
shipped fake Replicate server: every scene is generated exactly once across them, nothing is recorded in
dvc.lock or committed, and a gather on a fourth clone (`dvc repro --pull`, or `s9 repro`) restores every scene
from the run cache with zero predictions, leaving `dvc status` clean. A shard killed mid-run and run again on
another machine pays only for what never started; with the deterministic offline renderer the gathered locks
are byte-identical to a single machine's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import make_concept
from test_pipeline_helpers import BATCH, BIN, ENV, PARAMS, dvc_stale, init_repo, run, s9_stale
from test_pipeline_remote import S3_ENV, s3_url

from s9 import pipeline
from s9.errors import InputError
from s9.fake import FakeConfig, FakeReplicate
from s9.pipeline.shard import Shard, shard_of

S9 = str(BIN / "s9")
DVC = str(BIN / "dvc")
TOKEN = "r8_shard_tests_not_a_token"
# Assigned by name: charlie -> shard 1, bravo and delta -> 2, alpha, echo and foxtrot -> 3 (of 3).
CONCEPTS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def scenes(name: str, n: int = 2) -> list[dict]:
    return [{"scene_number": i, "video_prompt": f"{name} shot {i}", "audio_background": "strings",
             "audio_dialogue": f'Narrator: "{name} {i}"', "duration_seconds": 4} for i in range(1, n + 1)]


def origin(tmp_path: Path, names: tuple[str, ...], backend: str, n: int = 2) -> Path:
    """The repo every runner clones: concepts registered and committed, nothing generated."""
    root = init_repo(tmp_path / "origin", PARAMS.replace("backend: offline", f"backend: {backend}"))
    for name in names:
        prompts, frames = make_concept(tmp_path / "src", name, scenes=scenes(name, n), batch=BATCH)
        pipeline.add_concept(root, prompts, frames)
    commit(root, "concepts")
    return root


def commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", message], root)


def clone(src: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(src), str(dest)], dest.parent)
    return dest


def with_s3_remote(root: Path, url: str, bucket_path: str) -> None:
    run([DVC, "remote", "add", "-d", "shared", f"s3://clips/{bucket_path}"], root)
    run([DVC, "remote", "modify", "shared", "endpointurl", url], root)


def prompts_made(server: FakeReplicate) -> Counter[str]:
    return Counter(p["input"]["prompt"].split("\n")[0] for p in server.predictions())


def shard_processes(clones: list[Path], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """`s9 repro --shard K/N` in every clone at the same time."""
    procs = [subprocess.Popen([S9, "repro", "-j", "2", "--shard", f"{k}/{len(clones)}"], cwd=root,
                              env={**ENV, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, root in enumerate(clones, 1)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def locks(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "pipelines").rglob("dvc.lock"))}


def test_shard_parse_and_assignment_is_stable() -> None:
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard.parse(" 1 / 1 ")) == "1/1"
    for bad in ("0/3", "4/3", "3", "a/b", ""):
        with pytest.raises(InputError, match="expected K/N"):
            Shard.parse(bad)
    assert [shard_of(name, 3) for name in CONCEPTS] == [3, 2, 1, 2, 3, 3]
    assert all(1 <= shard_of(f"c{i}", 7) <= 7 for i in range(100))


@pytest.mark.slow
def test_three_shards_at_once_then_a_gather_that_pays_nothing(tmp_path: Path, s3_url: str) -> None:
    s3 = {**S3_ENV}
    with FakeReplicate(config=FakeConfig(latency=0.2, shared_renders=True)) as server:
        env = {"REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": server.base_url, **s3}
        root = origin(tmp_path, CONCEPTS, "replicate")
        with_s3_remote(root, s3_url, tmp_path.name)
        commit(root, "remote")
        head = run(["git", "rev-parse", "HEAD"], root).stdout
        runners = [clone(root, tmp_path / f"runner{k}") for k in (1, 2, 3)]

        results = shard_processes(runners, env)
        for result in results:
            assert result.returncode == 0, result.stdout + result.stderr
        # Every scene exactly once across the three shards, each shard only its own concepts.
        made = prompts_made(server)
        assert made == Counter({f"{name} shot {i}": 1 for name in CONCEPTS for i in (1, 2)})
        assert "Shard 1/3: pushed to the DVC remote (clips and run-cache entries): 2 scene(s)" in results[0].stdout
        assert "Shard 3/3: pushed to the DVC remote (clips and run-cache entries): 6 scene(s)" in results[2].stdout
        for runner in runners:  # nothing recorded, nothing committed
            assert locks(runner) == {} and run(["git", "rev-parse", "HEAD"], runner).stdout == head
            assert "dvc.lock" not in run(["git", "status", "--porcelain"], runner).stdout

        # The gather, plain DVC: every scene from the run cache, no scene stage runs, no prediction.
        gather = clone(root, tmp_path / "gather")
        out = run([DVC, "repro", "--pull"], gather, env=env).stdout
        for name in CONCEPTS:
            for n in (1, 2):
                stage = f"pipelines/{BATCH}/{name}/dvc.yaml:p{n}"
                assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out, out
                assert f"Running stage '{stage}'" not in out
        assert sum(made.values()) == len(server.predictions()) == 12
        assert dvc_stale(gather) == set() == s9_stale(gather)

        # The gather with s9: the same, through its plan (pull before paying); the same locks.
        again = clone(root, tmp_path / "gather2")
        out = run([S9, "repro"], again, env=env).stdout
        assert "Restored from DVC's cache or remote: 12 scene(s)" in out and "Success rate" not in out
        assert len(server.predictions()) == 12
        assert dvc_stale(again) == set() == s9_stale(again)
        assert locks(again) == locks(gather) and len(locks(gather)) == len(CONCEPTS)

        # A rerun of the whole matrix pays for nothing; a new concept goes to its shard and moves no other.
        results = shard_processes(runners, env)
        assert all(r.returncode == 0 for r in results) and len(server.predictions()) == 12
        assert all("pushed to the DVC remote (clips and run-cache entries): 0 scene(s)" in r.stdout for r in results), [
            r.stdout + r.stderr for r in results]
        prompts, frames = make_concept(tmp_path / "src", "golf", scenes=scenes("golf"), batch=BATCH)
        pipeline.add_concept(root, prompts, frames)
        commit(root, "golf")
        assert shard_of("golf", 3) == 1
        for runner in runners:
            run(["git", "pull", "-q"], runner)
        results = shard_processes(runners, env)
        assert all(r.returncode == 0 for r in results)
        assert prompts_made(server) - made == Counter({"golf shot 1": 1, "golf shot 2": 1})
        assert "pushed to the DVC remote (clips and run-cache entries): 2 scene(s)" in results[0].stdout
        assert all("pushed to the DVC remote (clips and run-cache entries): 0 scene(s)" in r.stdout
                   for r in results[1:])


@pytest.mark.slow
def test_a_shard_killed_mid_run_is_finished_elsewhere_without_paying_twice(tmp_path: Path) -> None:
    """Kill -9 while predictions are held open; rerun the same shard in a fresh clone (another runner): the
    finished scenes are on the remote, the in-flight predictions are found through the journal mirrored there,
    and only scenes that never started are created."""
    with FakeReplicate(config=FakeConfig(latency=3.0, shared_renders=True)) as server:
        env = {"REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": server.base_url}
        root = origin(tmp_path, ("alpha", "echo"), "replicate", n=3)  # both in shard 1 of 2
        assert {shard_of("alpha", 2), shard_of("echo", 2)} == {1}
        run([DVC, "remote", "add", "-d", "shared", str(tmp_path / "remote")], root)
        commit(root, "remote")
        first = clone(root, tmp_path / "first")
        proc = subprocess.Popen([S9, "repro", "-j", "2", "--shard", "1/2"], cwd=first, env={**ENV, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while len(server.predictions()) < 4:  # two finished, two more held open
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        paid = len(server.predictions())
        assert paid == 4 and sum(p["status"] == "succeeded" for p in server.predictions()) >= 2

        second = clone(root, tmp_path / "second")  # another machine: no local journal, no local cache
        result = run([S9, "repro", "-j", "2", "--shard", "1/2"], second, env=env)
        assert "6 scene(s)" not in result.stdout
        assert len(server.predictions()) == 6  # the two in flight were followed, two new ones made
        assert Counter(prompts_made(server).values()) == Counter({1: 6})
        gather = clone(root, tmp_path / "gather")
        assert "Restored from DVC's cache or remote: 6 scene(s)" in run([S9, "repro"], gather, env=env).stdout
        assert len(server.predictions()) == 6 and dvc_stale(gather) == set()


@pytest.mark.slow
def test_gathered_locks_equal_a_single_machines(tmp_path: Path) -> None:
    """With the deterministic offline renderer the same inputs give the same bytes anywhere: two shards and a
    gather leave exactly the dvc.lock files one machine's `s9 repro` leaves."""
    root = origin(tmp_path, ("alpha", "bravo", "charlie"), "offline", n=1)
    run([DVC, "remote", "add", "-d", "shared", str(tmp_path / "remote")], root)
    commit(root, "remote")
    for k in (1, 2):
        result = run([S9, "repro", "--shard", f"{k}/2"], clone(root, tmp_path / f"runner{k}"))
        assert "dvc.lock untouched" in result.stdout
    gather = clone(root, tmp_path / "gather")
    out = run([DVC, "repro", "--pull"], gather).stdout
    ran = re.findall(r"Running stage '([^']+)'", out)
    assert ran and all(stage.endswith(":inputs") for stage in ran), out  # s9 resolve only: no clip is made
    single = clone(root, tmp_path / "single")
    run([S9, "repro"], single)
    assert locks(gather) == locks(single) and len(locks(single)) == 3
    assert dvc_stale(gather) == set() == s9_stale(gather)
