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
import statistics
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
RENDER_CAPTION = 'Narrator: "Keep going."'
RENDER_FRAME = REPO / "data/s8_first_frames/sample_batch/watchmaker_journey/watchmaker_journey_p1_first_frame.jpg"


def bench_renderer(quick: bool) -> list[Row]:
    """5. The offline renderer on ONE core (taskset -c 0), as a whole process: 8 s of 1280x720 with audio.

    Beside it, in the same run and in turn (A B C A B C ...), the equivalent ffmpeg CLI command (issue 10):
    the JPEG looped and scaled, pushed in with zoompan, the caption as drawbox + drawtext (same font), an
    ambient chord of as many partials with the same fades, libx264 with s9's exact x264 options, AAC 96 kb/s.
    Also, for reference, the same command decoding the JPEG once (zoompan d=192) instead of looping it.
    Real-time factor = 8 s / median wall time; ratios = median of the pairwise wall-time ratios.
    """
    code = (
        "import sys; from pathlib import Path; from s9.video import render_clip\n"
        "render_clip(Path(sys.argv[2]), first_frame=Path(sys.argv[1]), width=1280, height=720, duration=8,"
        f" caption={RENDER_CAPTION!r}, audio=True, seed='bench')\n"
    )
    runs = 2 if quick else 5
    commands = {"s9": ["taskset", "-c", "0", sys.executable, "-c", code, str(RENDER_FRAME)]}
    times: dict[str, list[float]] = {"s9": []}
    with workspace() as tmp:
        if shutil.which("ffmpeg"):
            for variant in ("looped", "once"):
                commands[variant] = ["taskset", "-c", "0", *ffmpeg_anchor(tmp, looped=variant == "looped")]
                times[variant] = []
        for i in range(runs + 1):  # the first round warms the page cache and is not counted
            for name, cmd in commands.items():
                wall, _ = timed([*cmd, str(tmp / f"{name}_{i}.mp4")], tmp, env(OMP_NUM_THREADS="1"))
                if i:
                    times[name].append(wall)
        sizes = {f"{name}_bytes": (tmp / f"{name}_1.mp4").stat().st_size for name in commands}
    ours = times["s9"]
    rtf = 8.0 / statistics.median(ours)
    rows = [Row("offline renderer, 8 s 720p + audio, 1 core: real-time factor", round(rtf, 1), "x", ">= 4",
                rtf >= 4, {"render_seconds": spread(ours), "measured": "whole process, taskset -c 0"})]
    if "looped" not in times:
        rows.append(Row("offline renderer / ffmpeg CLI, same clip, 1 core", "ffmpeg CLI not installed "
                        "(apt-get install -y ffmpeg)", "", "<= 1.0", None, {}))
        return rows
    raw = {"s9_seconds": spread(ours), "ffmpeg_looped_seconds": spread(times["looped"]),
           "ffmpeg_once_seconds": spread(times["once"]), **sizes, "ffmpeg": ffmpeg_version()}
    looped = statistics.median(a / b for a, b in zip(ours, times["looped"], strict=True))
    once = statistics.median(a / b for a, b in zip(ours, times["once"], strict=True))
    rows.append(Row("offline renderer / ffmpeg CLI (JPEG looped, as in issue 10), same clip, 1 core: wall ratio",
                    round(looped, 3), "", "<= 1.0", looped <= 1.0, raw))
    rows.append(Row("offline renderer / ffmpeg CLI (JPEG decoded once), same clip, 1 core: wall ratio",
                    round(once, 3), "", "report", None, {}))
    return rows


def spread(times: list[float]) -> dict[str, float]:
    return {"min": round(min(times), 3), "median": round(statistics.median(times), 3), "max": round(max(times), 3)}


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" ", 1)[0]


def ffmpeg_anchor(tmp: Path, looped: bool) -> list[str]:
    """The ffmpeg command (output path to append) that makes the renderer's clip: same size, frame rate,
    duration, push-in, caption font and size, x264 options, audio shape and AAC bitrate. `looped`: the JPEG
    is looped (decoded and scaled for every frame, zoompan d=1), else decoded once (zoompan d=192)."""
    from PIL import ImageFont

    from s9.video.caption import caption_overlay
    from s9.video.encode import AUDIO_BITRATE, X264_OPTIONS
    from s9.video.motion import ZOOM_END, base_size

    font = tmp / "font.ttf"  # the renderer's own caption font (Pillow's bundled Aileron)
    font.write_bytes(ImageFont.load_default(size=36).path.getvalue())
    (tmp / "caption.txt").write_text(RENDER_CAPTION)
    band = caption_overlay(RENDER_CAPTION, 1280, 720)
    band_h, band_w = band.keep[0].shape
    base_w, base_h = base_size(1280, 720)
    ease = "(3*pow(on/191,2)-2*pow(on/191,3))"
    frames_per_input = 1 if looped else 192  # the renderer's smoothstep over 192 frames
    # A chord of nine partials with octaves and a 1 Hz beat, at the renderer's level, faded in and out.
    partials = [(110, .050), (138, .035), (165, .028), (220, .022), (220, .006), (276, .004), (330, .003),
                (440, .003), (221, .011)]
    chord = "+".join(f"{a}*sin(2*PI*{f}*t)" for f, a in partials)
    video = (f"[0:v]scale={base_w}:{base_h}:force_original_aspect_ratio=increase,crop={base_w}:{base_h},"
             f"zoompan=z='1+{float(ZOOM_END - 1)}*{ease}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d={frames_per_input}:"
             f"s=1280x720:fps=24,drawbox=x={band.x}:y={band.y}:w={band_w}:h={band_h}:color=black@0.63:t=fill,"
             f"drawtext=fontfile={font}:textfile={tmp / 'caption.txt'}:fontcolor=white:fontsize=36:"
             f"x=(w-text_w)/2:y={band.y + band_h // 4},format=yuv420p[v]")
    audio = "[1:a]afade=t=in:d=1.5,afade=t=out:st=6.5:d=1.5[a]"
    return ["ffmpeg", "-nostdin", "-y", "-v", "error", "-threads", "1", "-filter_threads", "1",
            "-filter_complex_threads", "1", *(["-loop", "1", "-framerate", "24"] if looped else []),
            "-i", str(RENDER_FRAME),
            "-f", "lavfi", "-i", f"aevalsrc=exprs='{chord}|{chord}':s=48000:d=8",
            "-filter_complex", f"{video};{audio}", "-map", "[v]", "-map", "[a]", "-t", "8",
            "-c:v", "libx264", "-preset", X264_OPTIONS["preset"], "-crf", X264_OPTIONS["crf"],
            "-x264-params", X264_OPTIONS["x264-params"], "-c:a", "aac", "-b:a", str(AUDIO_BITRATE)]


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
    import av

    from s9.video import renderer_identity

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "python": platform.python_version(),
        "dvc": dvc_version,
        "pyav / ffmpeg": f"{av.__version__} / {av.ffmpeg_version_info}",
        "renderer": renderer_identity(),
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
