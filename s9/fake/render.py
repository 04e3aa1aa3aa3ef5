"""Rendering a prediction's clip with the offline renderer (imported lazily: the fake loads without it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .state import utc_now


def render(workdir: Path, key: str, seed: str, first_frame: Path | None, width: int, height: int,
           duration: int, audio: bool, prompt: str) -> tuple[Path, datetime]:
    """Render one clip into `workdir/renders/<key>.mp4` (atomically); its path and when it was done."""
    from s9.video import render_clip  # lazy: the video module may be absent or slow to import

    if first_frame is None:
        first_frame = placeholder_frame(workdir, seed, width, height)
    dest = workdir / "renders" / f"{key}.mp4"
    partial = dest.with_name(f"{key}.partial.mp4")
    caption = prompt if len(prompt) <= 80 else prompt[:77] + "..."  # "" with shared_renders
    render_clip(partial, first_frame=first_frame, width=width, height=height, duration=duration,
                caption=caption, audio=audio, seed=seed, fps=24)
    partial.replace(dest)  # atomic: a download never sees a half-written clip
    return dest, utc_now()


def placeholder_frame(workdir: Path, seed: str, width: int, height: int) -> Path:
    """A plain frame coloured by the seed, for a prediction without a usable image."""
    from PIL import Image  # lazy: only needed when no usable image was given

    path = workdir / "frames" / f"{seed}-{width}x{height}.jpg"
    if not path.exists():
        r, g, b = bytes.fromhex(seed[:6])
        img = Image.new("RGB", (width, height), (64 + r // 2, 64 + g // 2, 64 + b // 2))
        img.save(path, "JPEG", quality=90)
    return path


def shape_of(image: Path | None) -> tuple[int, int]:
    """A 720p-class size with the aspect (16:9, 9:16 or 1:1, the nearest) of `image`; 16:9 without one."""
    if image is None:
        return 1280, 720
    from PIL import Image  # lazy, as elsewhere

    try:
        with Image.open(image) as img:
            w, h = img.size
    except OSError:
        return 1280, 720
    ratio = w / h if h else 16 / 9
    options = {16 / 9: (1280, 720), 9 / 16: (720, 1280), 1.0: (720, 720)}
    return options[min(options, key=lambda r: abs(r - ratio))]
