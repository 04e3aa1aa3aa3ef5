"""`s9 report` checked in a real headless browser (Debian's Chromium, driven by Playwright): the page loads
with no console error, every clip plays (its metadata loads), each scene shows its status, cost and exact
prompt, the markup in a prompt stays text, every link is relative (the page works from another checkout), and
a screenshot is taken. The contact sheet holds every scene's first and last frames."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pipeline_helpers import ENV, PARAMS, add_tiny, init_repo

from s9.fake import FakeConfig, FakeReplicate
from s9.report import THUMB

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/system-deps.sh installs it)")]
S9 = [sys.executable, "-m", "s9"]
TOKEN = "r8_S9ReportTest_never_written_3b7d"
HOSTILE = 'a lighthouse <b>bold</b> & "quoted" <script>window.hacked = 1</script>'
PROMPTS = "data/s7_scene_prompts/b1/tiny/tiny_scene_prompts.json"
# What Chromium needs here: no sandbox as root, no GPU, and nothing that phones home on a closed network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def s9(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*S9, *map(str, args)], cwd=cwd, env={**ENV, **(env or {})}, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-scene concept made on the fake API: scenes 1, 2, 4 generated (and paid), scene 3 refused (E005),
    then scene 4's prompt edited (stale); then `s9 report`."""
    base = tmp_path_factory.mktemp("report")
    root = base / "repo"
    init_repo(root, PARAMS.replace("backend: offline", "backend: replicate"))
    add_tiny(root, base / "src", scenes=[
        {"scene_number": n, "video_prompt": f"Scene {n}: {HOSTILE if n == 1 else 'a lighthouse'}"
         f"{' forbiddenword' if n == 3 else ''}.", "audio_background": "Waves.", "audio_dialogue": "",
         "duration_seconds": 4} for n in (1, 2, 3, 4)])
    with FakeReplicate(config=FakeConfig(latency=0.3, flag_word="forbiddenword")) as server:
        env = {"REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": server.base_url, "REPLICATE_POLL_INTERVAL": "0.1"}
        made = s9("repro", cwd=root, env=env)
        assert made.returncode == 1 and "Success rate: 3/4 (75%)" in made.stdout, made.stdout + made.stderr
    prompts = root / PROMPTS
    prompts.write_text(prompts.read_text().replace("Scene 4: a lighthouse.", "Scene 4: a lighthouse at dawn."))
    proc = s9("report", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "Review page of 4 scene(s)" in proc.stdout
    return root


def _browser_check(page_file: Path, shot: Path) -> dict:
    """Open the page from disk in headless Chromium; wait for every clip's metadata; screenshot; report."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else
                    None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(page_file.as_uri(), wait_until="load")
            # Every <video> reaches HAVE_METADATA (or fails, which the assertions below then show).
            page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)",
                                   timeout=30_000)
            page.screenshot(path=str(shot), full_page=True)
            found = page.evaluate("""() => ({
                videos: [...document.querySelectorAll('video')].map(v => ({
                    ready: v.readyState, error: v.error && v.error.code, duration: v.duration,
                    width: v.videoWidth, src: v.currentSrc, poster: v.getAttribute('poster'),
                    canPlay: v.canPlayType('video/mp4')})),
                scenes: [...document.querySelectorAll('section.scene')].map(s => ({
                    id: s.id, status: s.querySelector('.badge').textContent,
                    facts: Object.fromEntries([...s.querySelectorAll('dt')].map(
                        dt => [dt.textContent, dt.nextElementSibling.textContent])),
                    prompt: s.querySelector('pre').textContent,
                    hasVideo: !!s.querySelector('video')})),
                links: [...document.querySelectorAll('[src], [href]')].map(
                    e => e.getAttribute('src') || e.getAttribute('href')),
                scripts: document.querySelectorAll('script').length,
                hacked: window.hacked === 1,
                sheet: (() => { const i = document.querySelector('img.sheet');
                                return i && {complete: i.complete, width: i.naturalWidth}; })(),
            })""")
        finally:
            browser.close()
    found["problems"] = problems
    return found


def test_review_page_in_a_real_browser(reviewed: Path, tmp_path: Path) -> None:
    page = reviewed / "outputs/b1/_report/index.html"
    shot = tmp_path / "report.png"
    found = _browser_check(page, shot)
    assert found["problems"] == []
    # Every clip plays: three clips (scene 3 has none), each past HAVE_METADATA with the clip's real duration.
    assert len(found["videos"]) == 3
    for video in found["videos"]:
        assert video["ready"] >= 1 and video["error"] is None, video
        assert abs(video["duration"] - 4) < 0.5 and video["width"] > 0 and video["canPlay"], video
        assert video["src"].endswith("_veo_3.1_fast.mp4") and video["poster"].endswith("_first_frame.jpg")
    scenes = {s["id"]: s for s in found["scenes"]}
    assert list(scenes) == ["tiny_p1", "tiny_p2", "tiny_p3", "tiny_p4"]
    assert [scenes[k]["status"] for k in scenes] == ["fresh", "fresh", "failed", "stale"]
    assert not scenes["tiny_p3"]["hasVideo"]
    assert scenes["tiny_p3"]["facts"]["status"].startswith(
        "failed: The input or output was flagged as sensitive. Please try again with different inputs. (E005)")
    assert scenes["tiny_p4"]["facts"]["status"].startswith("stale: input changed: input.prompt")
    assert scenes["tiny_p1"]["facts"]["model"] == "Veo 3.1 Fast (google/veo-3.1-fast)"
    assert scenes["tiny_p1"]["facts"]["duration"] == "4 s" and scenes["tiny_p1"]["facts"]["aspect"] == "16:9"
    # Estimated at $0.15/s; paid from the journal: the three made clips, not the refused one.
    assert scenes["tiny_p1"]["facts"]["cost"] == "estimated $0.60 · paid $0.60"
    assert scenes["tiny_p3"]["facts"]["cost"] == "estimated $0.60 · paid $0.00"
    # The exact prompt sent for the clip in place: scene 4's clip was made from the prompt before the edit.
    debug = (reviewed / "outputs/b1/tiny/debug/scene_4/veo3_p4_prompt.txt").read_text()
    sent = json.loads(debug.split("API INPUT JSON:\n", 1)[1])["prompt"]
    assert scenes["tiny_p4"]["prompt"] == sent and "at dawn" not in sent
    # Markup in a prompt is text, never markup or script.
    assert scenes["tiny_p1"]["prompt"].startswith(f"Scene 1: {HOSTILE}.")
    assert found["scripts"] == 0 and not found["hacked"]
    # Relative links only (plus the empty inline favicon): nothing from a network, nothing machine-specific.
    assert all(not link.startswith(("/", "file:", "http:", "https:")) for link in found["links"]), found["links"]
    assert found["sheet"] == {"complete": True, "width": Image.open(page.with_name("contact_sheet.png")).width}
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.width == 1280 and image.height > 900


def test_review_page_works_from_another_checkout(reviewed: Path, tmp_path: Path) -> None:
    """The outputs and data folders somewhere else (as after a clone and `dvc pull`): the same page plays."""
    elsewhere = tmp_path / "clone"
    for folder in ("outputs", "data"):
        shutil.copytree(reviewed / folder, elsewhere / folder)
    found = _browser_check(elsewhere / "outputs/b1/_report/tiny.html", tmp_path / "tiny.png")
    assert found["problems"] == [] and len(found["videos"]) == 3
    assert all(v["ready"] >= 1 and v["src"].startswith(elsewhere.as_uri()) for v in found["videos"])


def test_contact_sheet_has_every_scenes_first_and_last_frame(reviewed: Path) -> None:
    with Image.open(reviewed / "outputs/b1/_report/tiny_contact_sheet.png") as sheet:
        sheet = sheet.convert("RGB")
    assert sheet.height == 28 + 4 * (THUMB[1] + 16)
    def covered(row: int, column: int) -> float:
        """How much of a cell is picture: the share of pixels that are neither the sheet's nor a cell's
        background."""
        x = 200 + 8 + column * (THUMB[0] + 16)
        y = 28 + row * (THUMB[1] + 16) + 8
        cell = np.asarray(sheet.crop((x, y, x + THUMB[0], y + THUMB[1]))).astype(int)
        background = (np.abs(cell - (32, 32, 36)).sum(axis=2) < 12) | (np.abs(cell - (16, 16, 16)).sum(axis=2) < 12)
        return float(1 - background.mean())

    for row in range(4):
        assert covered(row, 0) > 0.5  # a first frame
    for row in (0, 1, 3):
        assert covered(row, 1) > 0.5  # the clip's last frame, decoded
    assert covered(2, 1) < 0.1  # scene 3 has no clip: only the "(no clip yet)" note


def test_report_open_hands_the_page_to_the_browser(reviewed: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    browser.chmod(0o755)
    proc = s9("report", "tiny", "--open", cwd=reviewed, env={"BROWSER": str(browser), "DISPLAY": ""})
    assert proc.returncode == 0, proc.stderr
    assert opened.read_text() == (reviewed / "outputs/b1/_report/index.html").as_uri()


def test_report_of_an_unknown_target_is_bad_input(reviewed: Path) -> None:
    before = sorted(os.listdir(reviewed / "outputs/b1/_report"))
    proc = s9("report", "nosuchconcept", cwd=reviewed)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: nosuchconcept: no such concept or scene stage")
    assert sorted(os.listdir(reviewed / "outputs/b1/_report")) == before


def test_last_frame_is_the_clips_final_frame(reviewed: Path) -> None:
    """`last_frame` seeks near the end; decoding every frame must end on the same picture."""
    import av

    from s9.video import last_frame

    clip = reviewed / "outputs/b1/tiny/tiny_p1_veo_3.1_fast.mp4"
    with av.open(str(clip)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 4 * 24
    assert np.array_equal(np.asarray(last_frame(clip)), frames[-1])
    assert not np.array_equal(frames[-1], frames[0])
