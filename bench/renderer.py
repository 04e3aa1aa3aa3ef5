"""Row 5: the offline renderer on one core, beside the ffmpeg CLI making the same clip (issue 10)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from common import REPO, Row, env, spread, timed, workspace

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


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" ", 1)[0]


def ffmpeg_anchor(tmp: Path, looped: bool) -> list[str]:
    """The ffmpeg command (output path to append) that makes the renderer's clip: same size, frame rate,
    duration, push-in, caption font and size, x264 options, audio shape and AAC bitrate. `looped`: the JPEG
    is looped (decoded and scaled for every frame, zoompan d=1), else decoded once (zoompan d=192)."""
    from PIL import ImageFont

    from s9.video.caption import caption_overlay
    from s9.video.encode import AUDIO_BITRATE, AUDIO_OPTIONS, X264_OPTIONS
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
            "-x264-params", X264_OPTIONS["x264-params"], "-c:a", "aac", "-b:a", str(AUDIO_BITRATE),
            *(arg for key, value in AUDIO_OPTIONS.items() for arg in (f"-{key}", value))]
