"""Offline preview clips: render, probe and verify MP4s with PyAV.

The offline backend needs a real video that honours the same contract as the hosted models (H.264 at
the requested size, exact duration, AAC audio when asked), so everything downstream can be built and
tested without a network. `render_clip` makes that video from the scene's first frame: a slow push-in
with the dialogue burned in as a subtitle and a quiet ambient chord.

Output is byte-for-byte the same for the same inputs on every CPU of an architecture, for the libraries
named by `renderer_identity()`: pixels and PCM are integer arithmetic, x264 runs CPU-independent, and
FFmpeg's AAC encoder runs at a pinned CPU baseline. `probe` and `verify` check any clip, whichever
backend produced it.

    image.py    first frame: load, fit to the aspect, RGB -> YUV 4:2:0 (integer)
    motion.py   the push-in: camera path (exact rationals), bilinear warp (integer numpy)
    caption.py  the subtitle band, drawn once, blended per frame
    audio.py    the ambient chord as integer PCM
    encode.py   x264 / AAC / MP4 settings, the CPU baseline, renderer_identity
    render.py   render_clip
    probe.py    probe, verify, last_frame (for contact sheets)
"""

from __future__ import annotations

from .encode import renderer_identity
from .image import load_first_frame
from .probe import ClipInfo, last_frame, probe, verify
from .render import render_clip

__all__ = ["ClipInfo", "last_frame", "load_first_frame", "probe", "render_clip", "renderer_identity", "verify"]
