"""s9 benchmarks: speed and scale against the ideal and against plain `dvc repro`.

    .venv/bin/python bench/run.py            # full mode (tens of minutes)
    .venv/bin/python bench/run.py --quick    # smoke run (about two minutes)
    .venv/bin/python bench/run.py --only renderer,requests

Every figure is a ratio or a count measured in the same run, so it survives a noisy machine. The table is
printed and written to bench/RESULTS.md (or --out) with the date, the machine and the raw times.
Benchmarks are not tests: nothing here fails the build.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
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


# -- helpers ---------------------------------------------------------------------------------------------
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


def make_frame(path: Path, seed: int) -> None:
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (640, 360), ((seed * 37) % 255, 90, 160))
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
        make_frame(frames / f"{name}_p{n}_first_frame.jpg", seed=hash((name, n)) % 1000)
    return prompts, frames


def dvc_repo(root: Path, concepts: int, backend: str) -> Path:
    """A git + DVC repo with `concepts` × 5 registered scenes, all stale."""
    from s9.pipeline import add_concept

    repo = root / "repo"
    repo.mkdir(parents=True)
    e = env()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=e)
    subprocess.run([DVC, "init", "-q"], cwd=repo, check=True, env=e)
    for i in range(concepts):
        prompts, frames = make_concept(root, f"c{i:03d}")
        add_concept(repo, prompts, frames, batch="bench")
    params = repo / "params.yaml"
    text = params.read_text().replace("backend: offline", f"backend: {backend}")
    text = text.replace("max_spend_usd: 25.0", "max_spend_usd: 100000.0")
    params.write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=e)
    subprocess.run(["git", "commit", "-qm", "bench inputs"], cwd=repo, check=True, env=e)
    return repo


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
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def env(self) -> dict[str, str]:
        return env(REPLICATE_API_TOKEN=TOKEN, REPLICATE_BASE_URL=self.url)

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


# -- benchmarks ------------------------------------------------------------------------------------------
def bench_renderer(quick: bool) -> list[Row]:
    """5. The offline renderer on ONE core: 8 s of 1280x720 with audio; real-time factor (higher is better)."""
    code = (
        "import sys, time; from pathlib import Path; from s9.video import render_clip\n"
        "frame, out = Path(sys.argv[1]), Path(sys.argv[2])\n"
        "t0 = time.perf_counter()\n"
        "render_clip(out, first_frame=frame, width=1280, height=720, duration=8, caption='Narrator: \"Keep going.\"',"
        " audio=True, seed='bench')\n"
        "print(time.perf_counter() - t0)\n"
    )
    times = []
    with workspace() as tmp:
        frame = REPO / "data/s8_first_frames/sample_batch/watchmaker_journey/watchmaker_journey_p1_first_frame.jpg"
        for i in range(1 if quick else 3):
            out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code, str(frame), str(tmp / f"{i}.mp4")],
                                 capture_output=True, text=True, check=True, env=env(OMP_NUM_THREADS="1"))
            times.append(float(out.stdout.strip()))
    best = min(times)
    rtf = 8.0 / best
    return [Row("offline renderer, 8 s 720p + audio, 1 core: real-time factor", round(rtf, 1), "x", ">= 4",
                rtf >= 4, {"render_seconds": [round(t, 3) for t in times]})]


def bench_parallel(quick: bool) -> list[Row]:
    """1. Parallel efficiency: 5 scenes at latency L=3 s, W=3 and W=5: wall / (ceil(5/W) * L)."""
    latency = 3.0
    rows = []
    with server(latency) as srv, workspace() as tmp:
        prompts, frames = make_concept(tmp, "par", scenes=5)
        for workers in (3, 5):
            srv.call("/_fake/reset", {})
            work = tmp / f"w{workers}"
            work.mkdir()
            wall = _generate_in_process(prompts, frames, work, workers, srv.url)
            ideal = math.ceil(5 / workers) * latency
            ratio = wall / ideal
            rows.append(Row(f"parallel efficiency, 5 scenes, L=3 s, W={workers}: wall / ideal", round(ratio, 3), "",
                            "<= 1.10", ratio <= 1.10, {"wall_s": round(wall, 3), "ideal_s": ideal,
                                                       "requests": srv.call("/_fake/stats")["total"]}))
    return rows


def _generate_in_process(prompts: Path, frames: Path, work: Path, workers: int, base_url: str) -> float:
    """Time the library's runner alone (no interpreter start-up): what parallel efficiency is about."""
    from s9.backends.replicate import ReplicateBackend
    from s9.job import build_concept_jobs
    from s9.journal import Journal
    from s9.params import Settings
    from s9.runner import run_jobs
    from s9.scenes import load_concept

    settings = Settings(backend="replicate")
    jobs, _ = build_concept_jobs(load_concept(prompts), frames, settings, out_dir=work / "out")
    backend = ReplicateBackend(settings, journal=Journal(work / ".s9/journal"),
                               env={"REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": base_url})
    backend.check()  # as every command does: one token check per run, counted by the server like the rest
    t0 = time.perf_counter()
    summary = run_jobs(jobs, backend, workers)
    wall = time.perf_counter() - t0
    backend.close()
    if not summary.ok:
        raise RuntimeError(f"parallel bench failed: {[r.error for r in summary.failed]}")
    return wall


def bench_requests(quick: bool) -> list[Row]:
    """6. HTTP requests per clip at L=10 s, counted by the server."""
    latency = 10.0
    with server(latency) as srv, workspace() as tmp:
        prompts, frames = make_concept(tmp, "req", scenes=1)
        srv.call("/_fake/reset", {})
        wall = _generate_in_process(prompts, frames, tmp, 1, srv.url)
        stats = srv.call("/_fake/stats")
    return [Row("HTTP requests per clip at L=10 s", stats["total"], "requests", "<= 15", stats["total"] <= 15,
                {"by_route": stats["by_route"], "wall_s": round(wall, 3)})]


def bench_repro_vs_dvc(quick: bool) -> list[Row]:
    """2. `s9 repro -j 5` vs plain `dvc repro`, the same 5 stale scenes at L=5 s (replicate backend)."""
    latency = 5.0
    with server(latency) as srv, workspace() as tmp:
        repo_s9 = dvc_repo(tmp / "a", 1, "replicate")
        repo_dvc = tmp / "b" / "repo"
        shutil.copytree(repo_s9, repo_dvc, symlinks=True)
        t_s9, rss_s9 = timed([S9, "repro", "-j", "5"], repo_s9, srv.env())
        t_dvc, rss_dvc = timed([DVC, "repro"], repo_dvc, srv.env())
        creates = srv.call("/_fake/stats")["by_route"]
    ratio = t_s9 / t_dvc
    return [
        Row("s9 repro -j 5 / dvc repro, 5 stale scenes, L=5 s", round(ratio, 3), "", "<= 0.35 (ideal 0.2)",
            ratio <= 0.35, {"s9_repro_s": round(t_s9, 2), "dvc_repro_s": round(t_dvc, 2), "server": creates}),
        Row("peak RSS of s9 repro, 5 scenes (replicate, L=5 s)", round(rss_s9 / 1024), "MiB", "report", None,
            {"dvc_repro_peak_mib": round(rss_dvc / 1024)}),
    ]


def bench_scale(quick: bool) -> list[Row]:
    """3/4/7. Concepts x 5 scenes, all stale, API latency ~0: s9 repro vs dvc repro; no-op status; memory.

    The server runs with --shared-renders (one clip per shape), so what is measured is orchestration and
    bookkeeping, not the fake API rendering 500 clips on the same two cores.
    """
    s9_concepts = 20 if quick else 100
    dvc_concepts = [20] if quick else [20, 40, 100]
    rows: list[Row] = []
    with server(0.0, "--shared-renders") as srv, workspace() as tmp:
        repo = dvc_repo(tmp / "s9", s9_concepts, "replicate")
        scenes = s9_concepts * 5
        t_s9, rss = timed([S9, "repro", "-j", "5"], repo, srv.env())
        t_status, _ = timed([S9, "status"], repo, env())
        t_status2, _ = timed([S9, "status"], repo, env())
        t_dvc_status, _ = timed([DVC, "status"], repo, env())
        rows.append(Row(f"s9 repro -j 5, {scenes} stale scenes, L~0", round(t_s9, 1), "s", "report", None,
                        {"per_scene_s": round(t_s9 / scenes, 3)}))
        status = min(t_status, t_status2)
        rows.append(Row(f"s9 status, no-op, {scenes} scenes", round(status, 2), "s", "<= 3", status <= 3,
                        {"first_s": round(t_status, 2), "second_s": round(t_status2, 2),
                         "dvc_status_s": round(t_dvc_status, 2)}))
        rows.append(Row(f"peak RSS of s9 repro, {scenes} scenes", round(rss / 1024), "MiB", "report", None, {}))
        for n in dvc_concepts:
            t_d, _ = timed([DVC, "repro"], dvc_repo(tmp / f"dvc{n}", n, "replicate"), srv.env())
            t_s = t_s9 if n == s9_concepts else timed([S9, "repro", "-j", "5"],
                                                     dvc_repo(tmp / f"s9_{n}", n, "replicate"), srv.env())[0]
            target = ">= 10" if n * 5 == 500 else "report"
            met = t_d / t_s >= 10 if n * 5 == 500 else None
            rows.append(Row(f"speed-up of s9 repro -j 5 over dvc repro, {n * 5} stale scenes, L~0",
                            round(t_d / t_s, 1), "x", target, met,
                            {"dvc_repro_s": round(t_d, 1), "s9_repro_s": round(t_s, 1)}))
    return rows


BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "renderer": bench_renderer,
    "parallel": bench_parallel,
    "requests": bench_requests,
    "repro": bench_repro_vs_dvc,
    "scale": bench_scale,
}


def machine() -> dict[str, str]:
    dvc_version = subprocess.run([DVC, "--version"], capture_output=True, text=True, env=env()).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(len(os.sched_getaffinity(0))),
        "python": platform.python_version(),
        "dvc": dvc_version,
        "platform": platform.platform(),
    }


def render_table(rows: list[Row], info: dict[str, str], quick: bool) -> str:
    lines = [
        "# s9 benchmark results",
        "",
        f"- mode: {'quick' if quick else 'full'}",
        *(f"- {k}: {v}" for k, v in info.items()),
        "",
        "| benchmark | value | target | met |",
        "|---|---|---|---|",
    ]
    for row in rows:
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.name} | {row.value} {row.unit} | {row.target} | {met} |")
    lines += ["", "## Raw figures", ""]
    lines += [f"- {row.name}: `{json.dumps(row.raw)}`" for row in rows]
    history = Path(__file__).with_name("history.md")  # the before/after of past fixes, kept by hand
    if history.exists():
        lines += ["", history.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run, about two minutes")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHES)
    rows: list[Row] = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rows.extend(BENCHES[name](args.quick))
        print(f"   ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    text = render_table(rows, machine(), args.quick)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
