"""s9 benchmarks: speed and scale against the ideal, against plain `dvc repro` and against the ffmpeg CLI.

    .venv/bin/python bench/run.py            # full mode (over an hour: 10,000 scenes, and plain `dvc repro`)
    .venv/bin/python bench/run.py --quick    # smoke run (a few minutes)
    .venv/bin/python bench/run.py --only renderer,requests

Every figure comes from this one run; a time is given as min / median / max of its runs (`runs` says how many).
The table is printed and written to bench/RESULTS.md (or --out) with the date, the machine and its load, and
the raw figures; a full run to bench/RESULTS.md also rewrites the README's benchmark table, so the two always
agree. Benchmarks are not tests: nothing here fails the build.

The modules: common (processes, repos, the fake API), renderer (row 5), api (rows 1, 2, 6), scale (issue 14
and row 3), layouts (`dvc status` over other pipeline layouts).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from api import bench_parallel, bench_repro_vs_dvc, bench_requests
from common import DVC, REPO, Row, env, load
from renderer import bench_renderer
from scale import bench_bookkeeping, bench_throughput, bench_vs_dvc

BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "renderer": bench_renderer,
    "parallel": bench_parallel,
    "requests": bench_requests,
    "repro": bench_repro_vs_dvc,
    "throughput": bench_throughput,
    "bookkeeping": bench_bookkeeping,
    "scale": bench_vs_dvc,
}
README_BEGIN, README_END = "<!-- bench:table -->", "<!-- /bench:table -->"


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


def summary_table(rows: list[Row]) -> list[str]:
    lines = ["| benchmark | value | target | met |", "|---|---|---|---|"]
    for row in rows:
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.name} | {row.value} {row.unit} | {row.target} | {met} |")
    return lines


def render_table(rows: list[Row], info: dict[str, str], quick: bool, loads: dict[str, str],
                 only: str | None) -> str:
    lines = [
        "# s9 benchmark results",
        "",
        f"- mode: {'quick' if quick else 'full'}{f' (only {only})' if only else ''}; every figure below is from "
        "this one run of `bench/run.py`",
        *(f"- {k}: {v}" for k, v in info.items()),
        f"- load average (1 min) at the start / end of each benchmark: "
        f"{', '.join(f'{k} {v}' for k, v in loads.items())} (the machine is shared: other work ran beside it)",
        "",
        *summary_table(rows),
        "",
        "## Raw figures",
        "",
    ]
    lines += [f"- {row.name}: `{json.dumps(row.raw)}`" for row in rows if row.raw]
    lines += ["", "Earlier fixes and the figures that motivated them: [history.md](history.md) (kept by hand, not "
              "from this run)."]
    return "\n".join(lines) + "\n"


def update_readme(rows: list[Row], info: dict[str, str]) -> None:
    """The README's benchmark table, between its markers, from this run."""
    readme = REPO / "README.md"
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        return
    table = "\n".join([README_BEGIN, f"From the full run of {info['date']} ({info['cores']} cores, {info['cpu']}, "
                       f"{info['dvc'].split()[-1] if info['dvc'] else 'DVC'}; [bench/RESULTS.md](bench/RESULTS.md) "
                       "has the raw figures and the load):", "", *summary_table(rows), README_END])
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    readme.write_text(pattern.sub(lambda _m: table, text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run, a few minutes")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHES)
    rows: list[Row] = []
    loads: dict[str, str] = {}
    for name in names:
        print(f"== {name} (load {load()})", file=sys.stderr, flush=True)
        start_load = load()
        t0 = time.perf_counter()
        rows.extend(BENCHES[name](args.quick))
        loads[name] = f"{start_load} / {load()}"
        print(f"   ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    info = machine()
    text = render_table(rows, info, args.quick, loads, args.only)
    print(text)
    args.out.write_text(text)
    if not args.quick and not args.only and args.out.resolve() == (REPO / "bench" / "RESULTS.md").resolve():
        update_readme(rows, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
