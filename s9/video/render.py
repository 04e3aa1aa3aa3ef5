"""`render_clip`: the first frame, fitted, with a slow push-in, the dialogue burned in, an ambient chord."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from s9.errors import GenerationError, InputError

from . import encode
from .audio import ambient
from .caption import caption_overlay
from .image import fit, load_first_frame, to_yuv420
from .motion import Plane, base_size, camera_path, pan_direction
from .probe import one_line


def render_clip(
    dest: Path,
    *,
    first_frame: Path,
    width: int,
    height: int,
    duration: int,
    caption: str = "",
    audio: bool = True,
    seed: str = "",
    fps: int = 24,
    last_frame: Path | None = None,
) -> None:
    """Write a preview MP4 to `dest`: the first frame with a slow push-in, the caption as a subtitle.

    With `last_frame` (continuity: the next scene's first frame), the last half second settles into that
    picture, fitted by the same rule, and the clip's final frame is exactly it.

    H.264 (yuv420p, BT.709) at exactly width x height and `fps`, exactly `duration` seconds, plus an AAC
    ambient track when `audio` is true. The same arguments give the same bytes on every machine with the
    same `renderer_identity()`.
    """
    dest = Path(dest)
    _check_render_args(width=width, height=height, duration=duration, fps=fps)
    source = load_first_frame(Path(first_frame))
    digest = hashlib.sha256(seed.encode("utf-8")).digest()

    # The base is fitted and converted to YUV once; each frame then only warps the three planes.
    base_w, base_h = base_size(width, height)
    y, u, v = to_yuv420(fit(source, base_w, base_h))
    planes = (Plane(y, 1), Plane(u, 2), Plane(v, 2))
    overlay = caption_overlay(caption, width, height)
    n_frames = duration * fps
    path = camera_path(base_w, base_h, width, height, n_frames, pan_direction(digest))
    pcm = ambient(digest, duration) if audio else None
    end = to_yuv420(fit(load_first_frame(Path(last_frame)), width, height)) if last_frame is not None else None
    settle = min(n_frames - 1, fps // 2) if end is not None else 0

    container = encode.open_clip(dest)
    try:
        with container:
            vstream = encode.add_video(container, width, height, fps)
            if pcm is not None:
                encode.pin_ffmpeg_cpu()
                encode.mux_audio(container, pcm)
            time_base = Fraction(1, fps)
            # One frame buffer for the whole clip: x264 copies each picture in before encode() returns, and
            # fresh 1.4 MB buffers per frame would cost a page fault per 4 KB.
            frame = av.VideoFrame(width, height, "yuv420p")
            views = _plane_views(frame, width, height)
            for i, cam in enumerate(path):
                for plane, view in zip(planes, views, strict=True):
                    plane.warp(cam, view)
                if overlay is not None:
                    overlay.apply(views)
                if end is not None and i >= n_frames - settle:
                    _settle(views, end, i - (n_frames - settle) + 1, settle)
                frame.pts, frame.time_base = i, time_base
                frame.colorspace, frame.color_range = encode.BT709, encode.LIMITED_RANGE
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
    except av.FFmpegError as exc:
        raise GenerationError(f"{dest}: encoding the preview clip failed ({one_line(exc)})") from None


def _settle(views: tuple[np.ndarray, np.ndarray, np.ndarray], end: tuple[np.ndarray, ...], step: int,
            steps: int) -> None:
    """Blend `step`/`steps` of the end picture into the frame, in integer arithmetic (the same bytes on every
    machine); at the last step the frame is the end picture."""
    for view, target in zip(views, end, strict=True):
        mixed = (view.astype(np.uint16) * (steps - step) + target.astype(np.uint16) * step + steps // 2) // steps
        view[...] = mixed.astype(np.uint8)


def _plane_views(frame: av.VideoFrame, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable numpy views of the frame's Y, U, V planes (FFmpeg pads rows, e.g. 360 -> 368 bytes)."""
    sizes = ((width, height), (width // 2, height // 2), (width // 2, height // 2))
    views = []
    for plane, (w, h) in zip(frame.planes, sizes, strict=True):
        buf = np.frombuffer(plane, dtype=np.uint8)
        views.append(buf[: h * plane.line_size].reshape(h, plane.line_size)[:, :w])
    return views[0], views[1], views[2]


def _check_render_args(*, width: int, height: int, duration: int, fps: int) -> None:
    # yuv420p halves the chroma planes, so x264 needs even dimensions.
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 16 or value % 2:
            raise InputError(f"clip {name} must be an even number of pixels >= 16, got {value!r}")
    if not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0:
        raise InputError(f"clip duration must be a positive whole number of seconds, got {duration!r}")
    if not isinstance(fps, int) or isinstance(fps, bool) or fps <= 0:
        raise InputError(f"clip fps must be a positive whole number, got {fps!r}")
