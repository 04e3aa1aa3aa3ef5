# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""Sharing clips through a DVC remote: pull before paying.

A repo whose clips (and run cache) are on its remote is cloned fresh; with the Replicate backend on the shipped
fake server, `s9 status` says `dvc pull`, `s9 plan` prices the scenes at $0, and `s9 repro` makes zero
predictions. Run against a local-directory remote and a real S3-compatible server (moto) on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pipeline_helpers import BIN, CONCEPT, clip, dvc_stale, fresh, run, s9_stale

S9 = str(BIN / "s9")
DVC = str(BIN / "dvc")
PROMPTS = f"data/s7_scene_prompts/b1/{CONCEPT}/{CONCEPT}_scene_prompts.json"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """A real S3-compatible server (moto's) on loopback, with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, **{k.lower(): v for k, v in S3_ENV.items() if k != "AWS_DEFAULT_REGION"},
                 region_name="us-east-1").create_bucket(Bucket="clips")
    yield url
    server.stop()


@pytest.fixture
def fake_api() -> Iterator[tuple[object, dict[str, str]]]:
    from s9.fake import FakeConfig, FakeReplicate

    with FakeReplicate(config=FakeConfig(latency=0.1)) as server:
        yield server, {"REPLICATE_API_TOKEN": "r8_test", "REPLICATE_BASE_URL": server.base_url, **S3_ENV}


def _add_remote(root: Path, kind: str, tmp_path: Path, s3_url: str | None) -> None:
    if kind == "local":
        run([DVC, "remote", "add", "-d", "shared", str(tmp_path / "remote")], root)
    else:
        run([DVC, "remote", "add", "-d", "shared", f"s3://clips/{tmp_path.name}"], root)
        run([DVC, "remote", "modify", "shared", "endpointurl", s3_url], root)


def _edit_prompt(root: Path, index: int, text: str) -> None:
    data = json.loads((root / PROMPTS).read_text())
    data["scenes"][index]["video_prompt"] = text
    (root / PROMPTS).write_text(json.dumps(data, indent=2))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_fresh_clone_pulls_instead_of_paying(fresh: Path, tmp_path: Path, kind: str, request: pytest.FixtureRequest,
                                               fake_api: tuple) -> None:
    server, env = fake_api
    s3 = request.getfixturevalue("s3_url") if kind == "s3" else None
    params = fresh / "params.yaml"
    params.write_text(params.read_text().replace("backend: offline", "backend: replicate"))
    run([S9, "repro"], fresh, env=env)
    _add_remote(fresh, kind, tmp_path, s3)
    # A run another branch made and pushed (its clips, and its run cache): scene 2 with another prompt.
    committed = (fresh / PROMPTS).read_bytes()
    _edit_prompt(fresh, 1, "The keeper climbs the stairs.")
    run([S9, "repro"], fresh, env=env)
    run([DVC, "push", "--run-cache"], fresh, env=env)
    (fresh / PROMPTS).write_bytes(committed)
    run([S9, "repro"], fresh, env=env)  # back to the committed prompt: restored from the local cache
    paid = len(server.predictions())
    assert paid == 4
    run(["git", "add", "-A"], fresh)
    run(["git", "commit", "-q", "-m", "clips"], fresh)
    run([DVC, "push", "--run-cache"], fresh, env=env)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(fresh), str(clone)], tmp_path)
    status = run([S9, "status"], clone, check=False, env=env)
    assert status.returncode == 1 and "3 of 3 scene(s) stale: run `dvc pull`" in status.stdout
    # CI without the clips: dvc.lock matches prompts, frames and params.
    assert run([S9, "status", "--no-outputs"], clone, env=env).stdout.strip() == "All 3 scene(s) up to date."
    the_plan = json.loads(run([S9, "plan", "--json"], clone, env=env).stdout)
    assert [s["how"] for s in the_plan["scenes"]] == ["pull"] * 3 and the_plan["total_usd"] == 0
    assert not list((clone / "outputs").rglob("*.mp4")) if (clone / "outputs").exists() else True  # plan wrote nothing
    result = run([S9, "repro"], clone, env=env)
    assert "Restored from DVC's cache or remote: 3 scene(s)" in result.stdout
    assert len(server.predictions()) == paid  # nothing paid again
    for n in (1, 2, 3):
        assert (clone / clip(n)).read_bytes() == (fresh / clip(n)).read_bytes()
    assert dvc_stale(clone) == set() == s9_stale(clone)

    # The other branch's prompt for scene 2: its run is in the remote's run cache, so it is pulled, not paid.
    _edit_prompt(clone, 1, "The keeper climbs the stairs.")
    the_plan = json.loads(run([S9, "plan", "--json"], clone, env=env).stdout)
    assert [(s["key"], s["how"]) for s in the_plan["scenes"]] == [("tiny_p2", "pull")]
    run([S9, "repro"], clone, env=env)
    assert len(server.predictions()) == paid
    assert s9_stale(clone) == set() == dvc_stale(clone)
    # --no-pull opts out: with the clips gone locally, the plan is to generate.
    (clone / clip(1)).unlink()
    import shutil

    shutil.rmtree(clone / ".dvc/cache")
    assert json.loads(run([S9, "plan", "--json", "--no-pull"], clone, env=env).stdout)["generate"] == 3


@pytest.mark.slow
def test_offline_clone_with_a_remote_is_clean_after_dvc_pull(fresh: Path, tmp_path: Path) -> None:
    """The plain DVC way still works: push, clone, `dvc pull`, and both status commands are clean."""
    run([S9, "repro"], fresh)
    _add_remote(fresh, "local", tmp_path, None)
    run(["git", "add", "-A"], fresh)
    run(["git", "commit", "-q", "-m", "clips"], fresh)
    run([DVC, "push"], fresh)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(fresh), str(clone)], tmp_path)
    run([DVC, "pull"], clone)
    assert run([S9, "status"], clone).stdout.strip() == "All 3 scene(s) up to date."
    assert dvc_stale(clone) == set()
    assert "nothing to do" in run([S9, "repro"], clone).stdout
    assert os.listdir(clone / f"outputs/b1/{CONCEPT}")
