"""Issue 14: thousands of scenes from one machine.

- throughput: 1,000 scenes at L = 60 s with W = 200 against the fake API's create limit (600/min), as one
  `s9 repro` process: wall / max(ceil(N/W) L, N/10 s + L), requests per clip, failed scenes, 429s;
- bookkeeping and memory at 100 / 1,000 / 5,000 / 10,000 scenes (L ~ 0, shared renders, the client's pacing
  raised: `UNPACED`): `s9 repro` wall time per scene and peak RSS, the first `s9 status` after it (time, RSS)
  and warm ones, `s9 add` of one more concept, and at the largest size `dvc status` in three layouts
  (bench/layouts.py);
- against plain `dvc repro` at 100 and 500 scenes (row 3 of the original harness).
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import subprocess
from pathlib import Path

from common import DVC, S9, FakeServer, Row, dvc_repo, env, load, make_concept, mib, server, spread, timed, workspace
from layouts import layout

THROTTLE = ("--create-limit", "600", "--create-burst", "10")
# The L ~ 0 benchmarks measure s9's own bookkeeping, so the client paces as for an account with a far higher
# limit than the documented 600 creates/min: at that limit 500 scenes take >= 49 s whatever s9 does, and the
# figure would be the pacer's (the throughput benchmark above is the one run at 600/min).
UNPACED = {"S9_REPLICATE_CREATES_PER_MINUTE": "60000", "S9_REPLICATE_REQUESTS_PER_MINUTE": "60000"}


def _warm_schema(srv: FakeServer, repo: Path, tmp: Path) -> None:
    """One scene through `s9 clip` in the repo: the model's schema is then cached for the day, as on any
    machine that ran s9 today; the fake's counters are reset after."""
    prompts, frames = make_concept(tmp / "warm", "warmup", scenes=1)
    timed([S9, "clip", str(prompts), "1", str(frames / "warmup_p1_first_frame.jpg"), str(tmp / "warm.mp4"),
           "--backend", "replicate"], repo, srv.env())
    srv.call("/_fake/reset", {})


def bench_throughput(quick: bool) -> list[Row]:
    """1,000 scenes, L = 60 s, W = 200, the fake's create limit 600/min (burst 10), shared renders."""
    scenes, latency, workers = (60, 6.0, 30) if quick else (1000, 60.0, 200)
    with server(latency, "--shared-renders", *THROTTLE) as srv, workspace() as tmp:
        repo, _ = dvc_repo(tmp, scenes // 5, "replicate")
        _warm_schema(srv, repo, tmp)
        before = load()
        wall, rss = timed([S9, "repro", "-j", str(workers)], repo, srv.env(), check=False)
        stats = srv.call("/_fake/stats")
        report = json.loads(_run_json([S9, "status", "--json"], repo))
    bound = max(math.ceil(scenes / workers) * latency, scenes / 10 + latency)
    ratio = wall / bound
    per_clip = stats["total"] / scenes
    failed = report["stale"]
    raw = {"wall_s": round(wall, 1), "bound_s": bound, "requests": stats["total"], "by_route": stats["by_route"],
           "429s": stats["throttled"], "stale_after": failed, "peak_rss_mib": mib(rss), "load_before": before,
           "load_after": load()}
    name = f"{scenes} scenes, L={latency:g} s, W={workers}, create limit 600/min"
    return [
        Row(f"throughput, {name}: wall / max(ceil(N/W) L, N/10 s + L)", round(ratio, 3), "", "<= 1.1",
            ratio <= 1.1, raw),
        Row(f"HTTP requests per clip, {name}", round(per_clip, 4), "", f"<= {3 + 1 / scenes:.4f}",
            per_clip <= 3 + 1 / scenes, {}),
        Row(f"failed scenes / 429 answers, {name}", f"{failed} / {stats['throttled']}", "", "0 failed",
            failed == 0, {}),
    ]


def _run_json(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True).stdout


def bench_bookkeeping(quick: bool) -> list[Row]:
    """Bookkeeping and memory against the number of scenes (L ~ 0, shared renders, -j 5). The smallest repo is
    kept to the end, so `s9 add` and warm `s9 status` at the smallest and largest sizes are also timed side by
    side, alternating, in one window of the (shared) machine's load: their ratios come from those pairs."""
    sizes = [100, 200, 300] if quick else [100, 1000, 5000, 10000]
    runs = 3 if quick else 5
    found: dict[int, dict] = {}
    rows: list[Row] = []
    with server(0.0, "--shared-renders") as srv, contextlib.ExitStack() as keep:
        first: Path | None = None
        pair: dict = {}
        for size in sizes:
            with contextlib.ExitStack() as scoped:
                tmp = (keep if size == sizes[0] else scoped).enter_context(workspace())
                repo, took = dvc_repo(tmp, size // 5, "replicate")
                found[size] = _one_size(srv, repo, tmp, size, took, runs)
                first = first or repo
                if size == sizes[-1]:
                    pair = _paired({sizes[0]: first, size: repo}, runs, tmp)
                    rows += _dvc_status_layouts(repo, size, quick)
    small, big = sizes[0], sizes[-1]
    mid = 1000 if 1000 in found else sizes[1]
    f = found
    rows[:0] = [
        Row(f"peak RSS of s9 repro at {' / '.join(map(str, sizes))} scenes", " / ".join(
            str(f[s]["repro_rss_mib"]) for s in sizes), "MiB", f"<= 256 at {big}; {mid}->{big} < 32",
            f[big]["repro_rss_mib"] <= 256 and f[big]["repro_rss_mib"] - f[mid]["repro_rss_mib"] < 32,
            {str(s): f[s] for s in sizes}),
        Row(f"peak RSS of s9 status at {' / '.join(map(str, sizes))} scenes", " / ".join(
            str(f[s]["status_rss_mib"]) for s in sizes), "MiB", f"<= 256 at {big}; {mid}->{big} < 32",
            f[big]["status_rss_mib"] <= 256 and f[big]["status_rss_mib"] - f[mid]["status_rss_mib"] < 32, {}),
        _ratio_row(f"s9 repro bookkeeping per scene (L~0, -j 5, client pacing raised, start-up taken out), "
                   f"{big} / {small} scenes",
                   f[big]["per_scene_ms"], f[small]["per_scene_ms"], "~ 1 (constant)", 1.25,
                   {str(s): f"{f[s]['per_scene_ms']} ms" for s in sizes}),
        _ratio_row(f"s9 add of one concept (whole process, side by side), {big} / {small} scenes",
                   pair["add_s"][str(big)]["median"], pair["add_s"][str(small)]["median"], "1 +- 0.2", 1.2,
                   {"side by side": pair["add_s"], "each size in its own window": {
                       str(s): f[s]["add_s"] for s in sizes}}, low=0.8),
        Row(f"warm s9 status at {small} / {big} scenes (median, side by side)",
            f"{pair['status_warm_s'][str(small)]['median']} / {pair['status_warm_s'][str(big)]['median']}", "s",
            f"<= 1 at {big}", pair["status_warm_s"][str(big)]["median"] <= 1,
            {"side by side": pair["status_warm_s"], "each size in its own window": {
                str(s): f[s]["status_warm_s"] for s in sizes}}),
        Row(f"first s9 status after a repro at {mid} scenes", f[mid]["status_first_s"], "s", f"<= 3 at {mid}",
            f[mid]["status_first_s"] <= 3, {str(s): f[s]["status_first_s"] for s in sizes}),
        _ratio_row(f"registering a concept (in process, median), {big} / {small} scenes",
                   f[big]["register_in_process_ms"], f[small]["register_in_process_ms"], "~ 1 (linear overall)", 1.2,
                   {str(s): f"{f[s]['register_in_process_ms']} ms" for s in sizes}, low=0.8),
    ]
    return rows


def _one_size(srv: FakeServer, repo: Path, tmp: Path, size: int, took: list[float], runs: int) -> dict:
    before = load()
    repro, repro_rss = timed([S9, "repro", "-j", "5"], repo, srv.env(**UNPACED))  # every scene stale
    first, first_rss = timed([S9, "status"], repo, env())  # the first call after that repro
    warm = [timed([S9, "status"], repo, env())[0] for _ in range(runs)]
    # Then a repro with nothing to do: start-up and one full check, taken out of the per-scene figure.
    noop, _ = timed([S9, "repro"], repo, srv.env(**UNPACED))
    adds = [_add(repo, tmp, f"extra{i}") for i in range(runs)]
    return {
        "repro_s": round(repro, 1), "per_scene_ms": round(1000 * (repro - noop) / size, 1),
        "repro_noop_s": round(noop, 2), "repro_rss_mib": mib(repro_rss), "status_first_s": round(first, 2),
        "status_rss_mib": mib(first_rss), "status_warm_s": spread(warm), "add_s": spread(adds),
        "register_in_process_ms": round(1000 * statistics.median(took), 1), "load_before": before,
        "load_after": load(),
    }


def _add(repo: Path, tmp: Path, name: str) -> float:
    """The seconds `s9 add` of one more 5-scene concept takes; the concept is removed after (untimed), so the
    repo stays at its size with every scene fresh."""
    prompts, frames = make_concept(tmp / "more", name)
    took = timed([S9, "add", str(prompts), str(frames), "--batch", "bench"], repo, env())[0]
    timed([S9, "remove", name], repo, env())
    return took


def _paired(repos: dict[int, Path], runs: int, tmp: Path) -> dict:
    """Warm `s9 status` and `s9 add` on the smallest and the largest repo (by size), alternating."""
    status: dict[int, list[float]] = {size: [] for size in repos}
    adds: dict[int, list[float]] = {size: [] for size in repos}
    before = load()
    for _ in range(runs):
        for size, repo in repos.items():
            status[size].append(timed([S9, "status"], repo, env())[0])
    for i in range(runs):
        for size, repo in repos.items():
            adds[size].append(_add(repo, tmp, f"pair{i}x{size}"))
    return {"status_warm_s": {str(k): spread(t) for k, t in status.items()},
            "add_s": {str(k): spread(t) for k, t in adds.items()}, "load_before": before, "load_after": load()}


def _ratio_row(name: str, big: float, small: float, target: str, high: float, raw: dict,
               low: float = 0.0) -> Row:
    ratio = big / small if small else float("inf")
    return Row(name, round(ratio, 2), "", target, low <= ratio <= high, raw)


def _dvc_status_layouts(repo: Path, size: int, quick: bool) -> list[Row]:
    """`dvc status` over the same stages, laid out per concept (s9's), in one file, and per group of 100
    concepts (500 scenes, what per-batch pipelines of that size would be)."""
    rows = []
    for kind in ("per-concept", "single", "per-group"):
        with layout(repo, kind, group=20 if quick else 100) as files:
            before = load()
            wall, rss = timed([DVC, "status"], repo, env(), check=False)
        stages = size + size // 5
        rows.append(Row(f"dvc status at {size} scenes, {kind} layout ({files} pipeline files, {stages} stages)",
                        round(wall, 1), "s", "report", None,
                        {"ms_per_stage": round(1000 * wall / stages, 1), "peak_rss_mib": mib(rss),
                         "load_before": before, "runs": 1}))
    return rows


def bench_vs_dvc(quick: bool) -> list[Row]:
    """3. `s9 repro -j 5` against plain `dvc repro`, all stale, L ~ 0 with shared renders."""
    sizes = [20] if quick else [20, 100]
    rows = []
    with server(0.0, "--shared-renders") as srv:
        for concepts in sizes:
            with workspace() as tmp:
                t_s, _ = timed([S9, "repro", "-j", "5"], dvc_repo(tmp / "s9", concepts, "replicate")[0],
                               srv.env(**UNPACED))
                t_d, _ = timed([DVC, "repro"], dvc_repo(tmp / "dvc", concepts, "replicate")[0], srv.env(**UNPACED))
            n = concepts * 5
            target, met = (">= 10", t_d / t_s >= 10) if n == 500 else ("report", None)
            name = f"speed-up of s9 repro -j 5 over dvc repro, {n} stale scenes, L~0, client pacing raised (both)"
            rows.append(Row(name, round(t_d / t_s, 1),
                            "x", target, met, {"dvc_repro_s": round(t_d, 1), "s9_repro_s": round(t_s, 1),
                                               "load": load()}))
    return rows
