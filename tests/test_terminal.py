# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""What a person sees in a real terminal (tmux, read back with capture-pane): `s9 generate` and `s9 repro` draw
a live display of every scene's phase and leave only clean lines behind; piped, they print plain lines only.
Also: a stale scene's last failure in `s9 status`, and the backend's phase hook seen from the runner."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_concept
from fakeapi import TOKEN, scenes, settings
from terminal import Terminal, needs_tmux
from test_pipeline_helpers import ENV, PARAMS, add_tiny, built, fresh, init_repo

from s9.backends.replicate import ReplicateBackend
from s9.fake import FakeConfig, FakeReplicate
from s9.job import build_concept_jobs
from s9.journal import Journal
from s9.runner import PHASES, run_jobs
from s9.scenes import load_concept

S9 = [sys.executable, "-m", "s9"]
BAR = "━"  # rich's bar: never left on the screen once a command ends


def term_env(server: FakeReplicate | None = None) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm-256color"}
    if server is not None:
        env |= {"REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": server.base_url,
                "REPLICATE_POLL_INTERVAL": "0.2"}
    return env


def scene_lines(screen: str, mark: str) -> list[str]:
    return [row for row in screen.splitlines() if f"] {mark} Scene " in row]


def assert_clean(screen: str, width: int) -> None:
    """Nothing a live display leaves behind: no bar, no bar glued to a scene line, no row over the width."""
    assert BAR not in screen, screen
    assert "generating" not in screen, screen
    assert all(len(row) <= width for row in screen.splitlines()), screen


@needs_tmux
@pytest.mark.slow
def test_generate_on_a_terminal_leaves_clean_lines(tmp_path: Path) -> None:
    width = 72
    deep = tmp_path / "a_rather_long_folder_name_for_the_run" / "and_another_level_below_it"
    prompts, frames = make_concept(deep, scenes=scenes(3), batch="b1")
    out = deep / "outputs_with_a_long_name" / "b1" / "tiny"
    with FakeReplicate(config=FakeConfig(latency=1.5, max_wait=1)) as server, \
            Terminal([*S9, "generate", str(prompts), "--frames", str(frames), "--out", str(out), "--backend",
                      "replicate", "--aspect-ratio", "1:1"], tmp_path, term_env(server), width=width) as term:
        # While it runs: the live display, one row per scene in flight with its phase and prediction id.
        live = term.wait_for(lambda s: re.search(r"\[tiny\] scene \d +(submitted|running) +\d+:\d\d  \w{20,}", s)
                             is not None,
                             what="a scene row with its prediction id")
        assert "generating" in live and BAR in live
        ids = {p["id"] for p in server.predictions()}
        shown = set(re.findall(r"(?:submitted|running|downloading) +\d+:\d\d  (\w{20,})", live))
        assert shown and shown <= ids, (shown, ids)
        code, screen = term.wait_exit()
    assert code == 0, screen
    assert_clean(screen, width)
    done = scene_lines(screen, "✓")
    assert sorted(row[:17] for row in done) == [f"[tiny] ✓ Scene {n}:" for n in (1, 2, 3)], screen
    # Each clip's path is longer than the screen: it is broken after a '/', so every file name stays whole.
    rel = out.relative_to(tmp_path).as_posix()
    assert len(rel) > width
    rows = screen.splitlines()
    for n in (1, 2, 3):
        name = f"tiny_p{n}_veo_3.1_fast.mp4"
        start = next(i for i, row in enumerate(rows) if row.startswith(f"[tiny] ✓ Scene {n}:"))
        end = next((i for i in range(start, min(start + 4, len(rows))) if name in rows[i]), None)
        assert end is not None, screen
        path_rows = [rows[start].split(":", 1)[1].strip(), *rows[start + 1:end + 1]]
        path_rows = [row for row in path_rows if row]
        assert all(row.endswith("/") for row in path_rows[:-1]), path_rows
        assert "".join(path_rows).startswith(f"{rel}/{name} ("), path_rows
    assert "Success rate: 3/3 (100%)" in screen


def _replicate_repo(root: Path, src: Path) -> None:
    init_repo(root, PARAMS.replace("backend: offline", "backend: replicate").replace("max_workers: 3",
                                                                                     "max_workers: 2"))
    add_tiny(root, src, scenes=[
        {"scene_number": n, "video_prompt": f"Scene {n}: a lighthouse{' forbiddenword' if n == 3 else ''}.",
         "audio_background": "Waves.", "audio_dialogue": "", "duration_seconds": 4} for n in (1, 2, 3, 4)])
    subprocess.run(["git", "add", "-A"], cwd=root, env=ENV, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "tiny"], cwd=root, env=ENV, check=True, capture_output=True)


@needs_tmux
@pytest.mark.slow
def test_repro_shows_each_scene_and_the_failures_in_plain_sight(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _replicate_repo(root, tmp_path / "src")
    width = 90
    config = FakeConfig(latency=1.5, max_wait=1, flag_word="forbiddenword")
    with FakeReplicate(config=config) as server, \
            Terminal([*S9, "repro"], root, term_env(server), width=width) as term:
        seen: set[str] = set()

        def phases(screen: str) -> bool:
            seen.update(re.findall(r"\[tiny\] scene \d +(uploading|submitted|running|downloading) ", screen))
            if re.search(r"generating .* \d+/4 .*\b\d+ queued\b", screen):  # the bar counts the waiting ones
                seen.add("queued")
            return {"queued", "submitted", "running"} <= seen

        term.wait_for(phases, what="queued, submitted and running scenes")
        code, screen = term.wait_exit()
        ids = {p["id"] for p in server.predictions()}
    assert code == 1, screen
    assert_clean(screen, width)
    assert "!" not in {row.strip() for row in screen.splitlines()}  # no redirected DVC progress-bar debris
    assert sorted(r[:17] for r in scene_lines(screen, "✓")) == [f"[tiny] ✓ Scene {n}:" for n in (1, 2, 4)]
    failed = " ".join(screen[screen.index("Failed (1):"):].split())  # unwrap the terminal's rows
    assert failed.startswith("Failed (1): [tiny] ✗ Scene 3: The input or output was flagged as sensitive."), failed
    assert "(E005) (see outputs/b1/tiny/debug/scene_3/error.txt)" in failed
    assert "Success rate: 3/4 (75%)" in screen and len(ids) == 4
    # Then `s9 status` (piped) names the stale scene and why its last run failed.
    status = subprocess.run([*S9, "status"], cwd=root, env=ENV, capture_output=True, text=True, timeout=120)
    assert status.returncode == 1
    lines = status.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("scene 3"))
    assert lines[at + 1].strip() == ("last run failed: The input or output was flagged as sensitive. Please try "
                                     "again with different inputs. (E005)"), status.stdout


def test_repro_piped_prints_plain_lines_only(fresh: Path) -> None:
    proc = subprocess.run([*S9, "repro"], cwd=fresh, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    assert "\x1b[" not in both and BAR not in both and "generating" not in both
    assert sorted(line[:17] for line in scene_lines(proc.stdout, "✓")) == [
        f"[tiny] ✓ Scene {n}:" for n in (1, 2, 3)]
    for n in (1, 2, 3):
        assert f"[tiny] ✓ Scene {n}: outputs/b1/tiny/tiny_p{n}_veo_3.1_fast.mp4 (" in proc.stdout


def test_repro_from_a_subfolder_uses_the_projects_params(fresh: Path) -> None:
    sub = fresh / "notes" / "deeper"
    sub.mkdir(parents=True)
    (sub / "params.yaml").write_text(PARAMS.replace("google/veo-3.1-fast", "openai/sora-2"))
    proc = subprocess.run([*S9, "repro"], cwd=sub, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Model: Veo 3.1 Fast" in proc.stdout and "Sora" not in proc.stdout
    assert all((fresh / f"outputs/b1/tiny/tiny_p{n}_veo_3.1_fast.mp4").is_file() for n in (1, 2, 3))
    assert "Recorded in dvc.lock: 3 scene stage(s)" in proc.stdout


def test_the_phase_hook_reports_phases_and_changes_nothing_sent(workdir: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """The same two scenes with nobody listening and with a listener: the same creates (input, Prefer,
    Cancel-After), the same requests but polls; the listener hears every phase in order, with the real id."""
    s = settings()
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.1")
    runs = {}
    for name, listen in (("quiet", False), ("heard", True)):
        with FakeReplicate(config=FakeConfig(latency=0.6, max_wait=0.2)) as server:
            monkeypatch.setenv("REPLICATE_BASE_URL", server.base_url)
            prompts, frames = make_concept(workdir / name, scenes=scenes(2))
            jobs, _ = build_concept_jobs(load_concept(prompts), frames, s)
            heard: dict[str, list[tuple[str, str | None]]] = {}

            def listener(kind: str, result, heard=heard) -> None:  # noqa: ANN001
                if kind in ("phase", "done"):
                    heard.setdefault(result.label, []).append((result.phase, result.prediction_id))

            backend = ReplicateBackend(s, journal=Journal(workdir / name / "journal"))
            backend.check()
            summary = run_jobs(jobs, backend, 2, listener if listen else None)
            backend.close()
            assert summary.ok, summary.results
            sent = sorted(json.dumps([{k: v for k, v in p["input"].items() if k != "image"}, p["prefer"],
                                      p["cancel_after"]], sort_keys=True) for p in server.predictions())
            routes = sorted(f"{r['method']} {r['route']}" for r in server.requests() if r["method"] != "GET"
                            or "outputs" in r["route"] or r["route"] == "/v1/account"
                            or r["route"].startswith("/v1/models"))
            runs[name] = (sent, routes, heard, {p["id"]: p["status"] for p in server.predictions()})
    assert runs["quiet"][0] == runs["heard"][0] and len(runs["quiet"][0]) == 2
    assert runs["quiet"][1] == runs["heard"][1]
    assert runs["quiet"][2] == {}
    heard, ids = runs["heard"][2], runs["heard"][3]
    assert set(heard) == {"tiny scene 1", "tiny scene 2"}
    for events in heard.values():
        phases = [p for p, _ in events]
        assert phases[0] == "queued" and phases[-1] == "done", events
        assert [PHASES.index(p) for p in phases] == sorted(PHASES.index(p) for p in phases), events
        assert {"uploading", "submitted", "running", "downloading"} <= set(phases), events
        assert ("submitted", None) in events  # said when the create is sent, before its answer
        shown = {pid for _, pid in events if pid}
        assert len(shown) == 1 and ids[shown.pop()] == "succeeded", events


@pytest.mark.slow
def test_ctrl_c_during_repro_keeps_every_earlier_clip(built: Path) -> None:
    """SIGINT a few seconds into `s9 repro` on the fake API (predictions held open, one scene still queued):
    exit 130, every clip made before is still there byte for byte, no partial file, and `s9 status` still says
    the interrupted scenes are stale."""
    params = built / "params.yaml"
    params.write_text(params.read_text().replace("backend: offline", "backend: replicate"))
    clips = {n: built / f"outputs/b1/tiny/tiny_p{n}_veo_3.1_fast.mp4" for n in (1, 2, 3)}
    before = {n: path.read_bytes() for n, path in clips.items()}
    with FakeReplicate(config=FakeConfig(latency=60.0)) as server:
        env = {**ENV, "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": server.base_url}
        proc = subprocess.Popen([*S9, "repro", "-j", "2"], cwd=built, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(server.predictions()) < 2:  # two creates held open; scene 3 waits for a worker
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        statuses = [p["status"] for p in server.predictions()]
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    assert statuses == ["canceled", "canceled"]  # nobody pays for what nobody waits for
    assert {n: path.read_bytes() for n, path in clips.items()} == before
    leftovers = [p for p in (built / "outputs").rglob("*") if ".tmp" in p.name or p.name.startswith(".s9-")]
    assert leftovers == []
    status = subprocess.run([*S9, "status", "--json"], cwd=built, env=ENV, capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 1
    stale = json.loads(status.stdout)["concepts"]["tiny"]["stale"]
    assert sorted(s["scene"] for s in stale) == [1, 2, 3]


@needs_tmux
def test_dvc_log_lines_during_the_live_display_print_above_it(tmp_path: Path) -> None:
    """DVC logs "Updating lock file …" when s9 records while scenes are queued or running (its handlers took the
    real stdout when dvc was imported): those lines go above the display, which leaves nothing behind."""
    code = (
        "import logging, time\n"
        "import dvc  # as in `s9 repro`: the repo is open before the first scene is shown\n"
        "from s9.cli.output import Progress\n"
        "from s9.runner import SceneResult\n"
        "with Progress() as progress:\n"
        "    queued = [SceneResult(f'tiny scene {n}', n, ok=False) for n in (1, 2)]\n"
        "    for result in queued:\n"
        "        progress('phase', result)\n"
        "    time.sleep(1.0)  # drawn (four refreshes a second)\n"
        "    for n in range(3):\n"
        "        logging.getLogger('dvc.dvcfile').info(\"Updating lock file 'pipelines/b1/tiny/dvc.lock'\")\n"
        "        time.sleep(0.3)\n"
    )  # and the display ends with the block, as when a run is over
    with Terminal([sys.executable, "-c", code], tmp_path, term_env(), width=90) as term:
        term.wait_for(lambda s: BAR in s, what="the live display")
        code_, screen = term.wait_exit()
    assert code_ == 0, screen
    assert screen.count("Updating lock file 'pipelines/b1/tiny/dvc.lock'") == 3, screen
    assert_clean(screen, 90)


@needs_tmux
def test_lines_from_many_threads_all_stay_above_the_live_display(tmp_path: Path) -> None:
    """Eight workers finish 120 scenes while the display keeps changing its number of rows, and DVC logs lines
    from another thread: every line stays on the screen once, and nothing of the display stays behind (rich
    drew a line's copy of the display outside its lock, so a redraw in between erased a line above)."""
    code = (
        "import logging, random, sys, threading, time\n"
        "import dvc\n"
        "from s9.cli.output import Progress\n"
        "from s9.runner import FAILED, RUNNING, SUBMITTED, SceneResult\n"
        "results = [SceneResult(f'c scene {n}', n, ok=False) for n in range(1, 121)]\n"
        "with Progress() as progress:\n"
        "    for result in results:\n"
        "        progress('phase', result)\n"
        "    todo = iter(results)\n"
        "    lock = threading.Lock()\n"
        "    def work():\n"
        "        while True:\n"
        "            with lock:\n"
        "                result = next(todo, None)\n"
        "            if result is None:\n"
        "                return\n"
        "            for phase in (SUBMITTED, RUNNING):\n"
        "                result.phase, result.started = phase, time.monotonic()\n"
        "                progress('phase', result)\n"
        "                time.sleep(random.random() * 0.02)\n"
        "            result.phase, result.error = FAILED, f'boom {result.scene_number}'\n"
        "            progress('done', result)\n"
        "            if result.scene_number % 4 == 0:\n"
        "                logging.getLogger('dvc.dvcfile').info(f'Updating lock file {result.scene_number}')\n"
        "    workers = [threading.Thread(target=work) for _ in range(8)]\n"
        "    for worker in workers:\n"
        "        worker.start()\n"
        "    for worker in workers:\n"
        "        worker.join()\n"
    )
    with Terminal([sys.executable, "-c", code], tmp_path, term_env(), width=90, height=30) as term:
        code_, screen = term.wait_exit()
    assert code_ == 0, screen
    assert_clean(screen, 90)
    failed = [int(n) for n in re.findall(r"^\[c\] ✗ Scene (\d+) failed: boom \1$", screen, re.M)]
    assert sorted(failed) == list(range(1, 121)), screen
    logged = [int(n) for n in re.findall(r"^Updating lock file (\d+)$", screen, re.M)]
    assert sorted(logged) == list(range(4, 121, 4)), screen


def test_the_display_stands_in_for_stderr_and_puts_it_back(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console
    from rich.text import Text

    from s9.cli.screen import SCREEN

    before = sys.stdout, sys.stderr
    SCREEN.show(Text("the display"))
    try:
        assert sys.stderr is not before[1]
        assert Console(stderr=True).file is before[1]  # rich writes to the real stream, not back into the stand-in
        print("a line from elsewhere", file=sys.stderr, end="")
        print(" ends here", file=sys.stderr)
        print("half a line", file=sys.stderr, end="")
    finally:
        SCREEN.hide()
    assert (sys.stdout, sys.stderr) == before
    assert capsys.readouterr().err.splitlines() == ["a line from elsewhere ends here", "half a line"]
