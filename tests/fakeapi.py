"""Shared by the tests that drive the real `replicate` client (or the `s9` CLI) against `FakeReplicate`:
the server fixtures, small real concepts, and reading request counts off the server's own log.

Import the fixtures into a test module (`from tests.fakeapi import server`) to use them there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from s9.backends.replicate import Policy, ReplicateBackend
from s9.cli import cli
from s9.fake import FakeConfig, FakeReplicate
from s9.job import Job, build_concept_jobs
from s9.params import Settings
from s9.runner import run_job
from s9.scenes import load_concept
from s9.video import verify
from tests.conftest import make_concept

TOKEN = "r8_S9TestToken_never_written_7c1e9a"
LATENCY = 0.2
CREATE = "POST /v1/models/{owner}/{name}/predictions"
GET = "GET /v1/predictions/{id}"
CANCEL = "POST /v1/predictions/{id}/cancel"
LIST = "GET /v1/predictions"
UPLOAD = "POST /v1/files"
ACCOUNT = "GET /v1/account"
SCHEMA = "GET /v1/models/{owner}/{name}"
OUTPUT = "GET /v1/outputs/{id}.mp4"
# Quick polling and backoff so in-process tests spend their time rendering, not sleeping. Creates are held
# with Prefer: wait=60 as shipped; NO_WAIT is the old create-then-poll path.
FAST = Policy(poll_initial=0.05, poll_factor=1.5, poll_max=0.25, backoff_base=0.05, backoff_max=2.0, attempts=4)
NO_WAIT = replace(FAST, wait=0)
S9 = [sys.executable, "-m", "s9.cli"]




def _serve(monkeypatch: pytest.MonkeyPatch, **kwargs) -> Iterator[FakeReplicate]:
    with FakeReplicate(config=FakeConfig(latency=LATENCY), **kwargs) as srv:
        monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
        monkeypatch.setenv("REPLICATE_BASE_URL", srv.base_url)
        monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.1")  # the CLI's backend starts polling at this
        yield srv


@pytest.fixture
def server(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReplicate]:
    """Plain http: the client hands output URLs over as `str`."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    yield from _serve(monkeypatch)


@pytest.fixture
def tls_server(workdir: Path, monkeypatch: pytest.MonkeyPatch, tls: dict[str, Path]) -> Iterator[FakeReplicate]:
    """https with a trustme CA that httpx trusts through SSL_CERT_FILE: outputs arrive as `FileOutput`."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls["ca"]))
    yield from _serve(monkeypatch, certfile=tls["cert"], keyfile=tls["key"])


def settings(**overrides) -> Settings:
    # 1:1 keeps the fake's renders at 720x720, the cheapest size.
    return Settings(**{"backend": "replicate", "aspect_ratio": "1:1", "duration_seconds": 4, **overrides})


def scenes(n: int = 3, flagged: tuple[int, ...] = ()) -> list[dict]:
    return [
        {
            "scene_number": i,
            "video_prompt": f"Scene {i}: a lighthouse at dusk{' with forbiddenword' if i in flagged else ''}.",
            "audio_background": "Waves.",
            "audio_dialogue": f'Keeper: "Light {i}."',
            "duration_seconds": 4,
        }
        for i in range(1, n + 1)
    ]


def jobs_for(root: Path, s: Settings, **concept_kwargs) -> list[Job]:
    prompts, frames = make_concept(root, **concept_kwargs)
    jobs, missing = build_concept_jobs(load_concept(prompts), frames, s)
    assert not missing
    return jobs


def backend(s: Settings, policy: Policy = FAST, **kwargs) -> ReplicateBackend:
    b = ReplicateBackend(s, policy=policy, **kwargs)
    b.check()
    return b


def hits(srv: FakeReplicate, route: str, status: int | None = None) -> int:
    """Requests the server saw for "METHOD route-template" (optionally with one status)."""
    return sum(1 for r in srv.requests() if f"{r['method']} {r['route']}" == route
               and (status is None or r["status"] == status))


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def one_good_clip(workdir: Path) -> tuple[Job, ReplicateBackend]:
    """Generate one scene with the default settings under whatever fault the test set; the clip must be good."""
    s = settings()
    job = jobs_for(workdir, s, scenes=scenes(1))[0]
    b = backend(s)
    run_job(job, b)
    check_clip(job)
    return job, b


def check_clip(job: Job) -> None:
    info = verify(job.output, duration=job.duration, audio=job.makes_audio, width=job.width, height=job.height)
    assert info.video_codec == "h264"


def s9(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """The real `s9` entry point in its own process (`python -m s9.cli`), with the test's environment."""
    proc = subprocess.run([*S9, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def write_params(root: Path, **video: object) -> Path:
    """A params.yaml in `root` with these video_settings (the rest default), on the replicate backend."""
    settings = {"backend": "replicate", "aspect_ratio": "1:1", "duration_seconds": 4, **video}
    budget = settings.pop("max_spend_usd", None)
    lines = ["video_settings:"] + [f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {str(v).lower()}"
                                   if isinstance(v, bool) else f"  {k}: {v}" for k, v in settings.items()]
    if budget is not None:
        lines += ["budget:", f"  max_spend_usd: {budget}"]
    path = root / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path
