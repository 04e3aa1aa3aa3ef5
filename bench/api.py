"""Rows 1, 2 and 6: s9's orchestration against the fake API -- parallel efficiency, `s9 repro` against plain
`dvc repro`, and HTTP requests per clip."""

from __future__ import annotations

import heapq
import math
import shutil
import time
from datetime import datetime
from pathlib import Path

from common import DVC, S9, TOKEN, Row, dvc_repo, make_concept, mib, server, timed, workspace


def makespan(durations: list[float], workers: int) -> float:
    """How long `workers` workers with no overhead at all take for jobs of these durations, in this order."""
    free = [0.0] * workers
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def bench_parallel(quick: bool) -> list[Row]:
    """1. Parallel efficiency: 5 scenes at latency L=3 s, W=3 and W=5, the runner in process.

    The fake API renders each clip for real (no shared renders), on the same two cores, so a prediction can
    take longer than L. Its own time is taken out of the figure: the ideal is what workers with no overhead
    would take for the predictions' actual durations (created -> completed, as the fake reports them), and the
    fake's CPU time spent rendering is reported beside it. The plain wall / (ceil(5/W) * L) is in the raw row.
    """
    latency = 3.0
    rows = []
    with server(latency) as srv, workspace() as tmp:
        prompts, frames = make_concept(tmp, "par", scenes=5)
        for workers in (3, 5):
            srv.call("/_fake/reset", {})
            work = tmp / f"w{workers}"
            work.mkdir()
            cpu0 = srv.cpu_seconds()
            seen = {p["id"] for p in srv.call("/_fake/predictions")}
            wall = _generate_in_process(prompts, frames, work, workers, srv.url)
            made = sorted((p for p in srv.call("/_fake/predictions") if p["id"] not in seen),
                          key=lambda p: p["created_at"])
            durations = [(datetime.fromisoformat(p["completed_at"]) - datetime.fromisoformat(p["created_at"]))
                         .total_seconds() for p in made]
            ideal = makespan(durations, workers)
            ratio = wall / ideal
            rows.append(Row(f"parallel efficiency, 5 scenes, L=3 s, W={workers}: wall / ideal (the fake API's "
                            "own render time taken out)", round(ratio, 3), "", "<= 1.10", ratio <= 1.10,
                            {"wall_s": round(wall, 3), "ideal_s": round(ideal, 3),
                             "ideal_at_L_s": math.ceil(5 / workers) * latency,
                             "wall_over_ceil_N_W_L": round(wall / (math.ceil(5 / workers) * latency), 3),
                             "prediction_seconds": [round(d, 2) for d in durations],
                             "fake_render_cpu_s": round(srv.cpu_seconds() - cpu0, 2),
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
        repo_s9, _ = dvc_repo(tmp / "a", 1, "replicate")
        repo_dvc = tmp / "b" / "repo"
        shutil.copytree(repo_s9, repo_dvc, symlinks=True)
        t_s9, rss_s9 = timed([S9, "repro", "-j", "5"], repo_s9, srv.env())
        t_dvc, rss_dvc = timed([DVC, "repro"], repo_dvc, srv.env())
        creates = srv.call("/_fake/stats")["by_route"]
    ratio = t_s9 / t_dvc
    return [
        Row("s9 repro -j 5 / dvc repro, 5 stale scenes, L=5 s", round(ratio, 3), "", "<= 0.35 (ideal 0.2)",
            ratio <= 0.35, {"s9_repro_s": round(t_s9, 2), "dvc_repro_s": round(t_dvc, 2), "server": creates}),
        Row("peak RSS of s9 repro, 5 scenes (replicate, L=5 s)", mib(rss_s9), "MiB", "report", None,
            {"dvc_repro_peak_mib": mib(rss_dvc)}),
    ]
