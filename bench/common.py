"""What every benchmark shares: rows of the results table, timing whole processes (wall time and peak RSS),
real concepts and repos to run them on, the shipped fake API in its own process, and the machine's load."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
S9 = str(BIN / "s9")
DVC = str(BIN / "dvc")
TOKEN = "r8_bench_not_a_real_token"


@dataclass
class Row:
    name: str
    value: float | int | str
    unit: str
    target: str
    met: bool | None
    raw: dict[str, object] = field(default_factory=dict)


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATE_")}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"  # dvc.yaml's stage command is `s9 stage …`
    base.update(DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
                GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    base.update(extra)
    return base


def timed(cmd: list[str], cwd: Path, environ: dict[str, str], check: bool = True) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command, via GNU time so the figure is the child's own."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-o", rss.name, "-f", "%M", *cmd], cwd=cwd, env=environ,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if check and proc.returncode != 0:
            tail = proc.stdout[-2000:] + proc.stderr[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
        peak = int((Path(rss.name).read_text().strip().splitlines() or ["0"])[-1])
    return wall, peak


def spread(times: list[float]) -> dict[str, float]:
    return {"min": round(min(times), 3), "median": round(statistics.median(times), 3), "max": round(max(times), 3),
            "runs": len(times)}


def mib(kib: int) -> int:
    return round(kib / 1024)


def load() -> float:
    """The 1-minute load average: how busy the (shared) machine was when a figure was taken."""
    return round(os.getloadavg()[0], 2)


def make_frame(path: Path, key: str) -> None:
    """A first frame of its own for every scene (no two scenes share an upload), the same on every run."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    r, g, b = hashlib.sha256(key.encode()).digest()[:3]
    image = Image.new("RGB", (640, 360), (r, g, b))
    ImageDraw.Draw(image).ellipse([100, 60, 300, 260], fill=(240, 220, 180))
    image.save(path, quality=85)


def make_concept(root: Path, name: str, scenes: int = 5, duration: int = 4) -> tuple[Path, Path]:
    prompts = root / "incoming" / "bench" / name / f"{name}_scene_prompts.json"
    prompts.parent.mkdir(parents=True, exist_ok=True)
    prompts.write_text(json.dumps({"concept": name, "scenes": [
        {"scene_number": n, "video_prompt": f"{name} shot {n}", "audio_background": "strings",
         "audio_dialogue": f'Narrator: "line {n}"', "duration_seconds": duration} for n in range(1, scenes + 1)
    ]}))
    frames = root / "incoming_frames" / name
    for n in range(1, scenes + 1):
        make_frame(frames / f"{name}_p{n}_first_frame.jpg", f"{name}/{n}")
    return prompts, frames


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, env=env(), capture_output=True)


def dvc_repo(root: Path, concepts: int, backend: str, *, start: int = 0) -> tuple[Path, list[float]]:
    """A git + DVC repo with `concepts` x 5 registered scenes, all stale, committed; and the seconds each
    registration took (in process, so the figure is s9's own work, not interpreter start-up)."""
    from s9.pipeline import add_concept

    repo = root / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env())
    subprocess.run([DVC, "init", "-q"], cwd=repo, check=True, env=env())
    took = []
    for i in range(start, start + concepts):
        prompts, frames = make_concept(root, f"c{i:04d}")
        t0 = time.perf_counter()
        add_concept(repo, prompts, frames, batch="bench")
        took.append(time.perf_counter() - t0)
        shutil.rmtree(root / "incoming_frames" / f"c{i:04d}")
    params = repo / "params.yaml"
    text = params.read_text().replace("backend: offline", f"backend: {backend}")
    text = text.replace("max_spend_usd: 25.0", "max_spend_usd: 100000.0")
    params.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bench inputs")
    return repo, took


class FakeServer:
    """The shipped Replicate-compatible server in its own process, as users' CI would run it."""

    def __init__(self, latency: float, *flags: str) -> None:
        self.proc = subprocess.Popen([S9, "fake-replicate", "--port", "0", "--latency", str(latency), *flags],
                                     stdout=subprocess.PIPE, text=True, env=env())
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("REPLICATE_BASE_URL="):
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = line.split("=", 1)[1]

    def call(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    def env(self, **extra: str) -> dict[str, str]:
        return env(REPLICATE_API_TOKEN=TOKEN, REPLICATE_BASE_URL=self.url, **extra)

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (its rendering, mostly)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@contextlib.contextmanager
def server(latency: float, *flags: str) -> Iterator[FakeServer]:
    srv = FakeServer(latency, *flags)
    try:
        yield srv
    finally:
        srv.close()


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="s9-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
