"""H.264 and AAC encoding with bytes that do not depend on the CPU, and the renderer's identity.

- x264 runs single-threaded with `cpu-independent=1`: its SIMD macroblock-tree code otherwise rounds
  differently per instruction set (an AVX2 and an AVX-512 machine gave different clips).
- FFmpeg's AAC encoder is float code whose SIMD paths (SSE, AVX, FMA3, ...) round differently, so before
  it is opened FFmpeg's CPU features are pinned to the baseline every CPU of the architecture has
  (`av_force_cpu_flags`, through ctypes on the libavutil that PyAV loaded). Pixels never go through
  FFmpeg (no swscale): the planes are computed in integers and handed over as they are.
- `S9_X264_ASM` (an x264 `asm=` value, e.g. `SSE2`) limits x264's SIMD to emulate an older CPU. The
  output must not change with it; the tests use it to prove that.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import sys
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import PIL

from s9.errors import GenerationError

from .audio import SAMPLE_RATE
from .probe import one_line

# Bump whenever the renderer's output bytes change for the same inputs and libraries.
RENDERER_VERSION = 3

# x264: "superfast" keeps an 8 s 720p clip well above 4x real time on one core; CRF 23 is x264's default
# quality. Macroblock-tree rate control (superfast turns it off) cuts the bitrate of a slow push-in about
# 2.5x for the cost of a short lookahead. No B-frames: with mbtree and B-frames this x264 (core 165) read
# uninitialised memory and was not reproducible even on one machine.
X264_OPTIONS = {
    "preset": "superfast",
    "crf": "23",
    "x264-params": "mbtree=1:rc-lookahead=10:bframes=0:cpu-independent=1",
}
AUDIO_BITRATE = 96_000
# FFmpeg's "fast" AAC coder: a preview's quiet chord does not need the default two-loop search, which took
# 0.19 s of an 8 s clip's 1.5 s render on one core (fast: 0.08 s, 2 % more bytes).
AUDIO_OPTIONS = {"aac_coder": "fast"}
_AUDIO_FRAME = 1024  # the AAC encoder's frame size

# FFmpeg's AV_CPU_FLAG_* baseline per architecture: what every CPU of it has (x86-64: MMX, MMXEXT, SSE,
# SSE2, CMOV; AArch64: ARMv8, NEON, VFP). Unknown architectures get plain C.
_CPU_BASELINE = {"x86_64": 0x1 | 0x2 | 0x8 | 0x10 | 0x1000, "aarch64": (1 << 6) | (1 << 5) | (1 << 3)}
_ARCH = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}

# FFmpeg enum values (AVCOL_SPC/PRI/TRC_BT709 are all 1; AVCOL_RANGE_MPEG is 1).
BT709 = 1
LIMITED_RANGE = 1


def machine() -> str:
    name = platform.machine().lower()
    return _ARCH.get(name, name)


def renderer_identity() -> str:
    """What the offline renderer's output bytes depend on besides its inputs, e.g.
    ``"s9-offline/2 av/18.1.0 ffmpeg/8.1.2 x264/165 pillow/13.0.0 x86_64"``.

    The renderer's own version (bumped whenever its output changes), the PyAV, FFmpeg and libx264 builds
    (read at run time), Pillow (JPEG decoding, glyph rasterising) and the CPU architecture (float code in
    x264's rate control and FFmpeg's AAC encoder is compiled per architecture; within one, the bytes do not
    depend on the CPU model). Make it an input of whatever caches clips, so an upgrade is a stated change.
    """
    return (
        f"s9-offline/{RENDERER_VERSION} av/{av.__version__} ffmpeg/{av.ffmpeg_version_info} "
        f"x264/{_x264_build()} pillow/{PIL.__version__} {machine()}"
    )


@lru_cache(maxsize=1)
def _x264_build() -> str:
    """libx264's API build number, from the version string x264 writes into every stream it encodes."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 16, 16, "yuv420p", Fraction(1, 24)
    ctx.options = {"preset": "ultrafast"}
    frame = av.VideoFrame(16, 16, "yuv420p")
    for plane in frame.planes:
        np.frombuffer(plane, dtype=np.uint8)[:] = 128
    frame.pts = 0
    data = b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))
    found = re.search(rb"x264 - core (\d+)", data)
    return found.group(1).decode() if found else "unknown"


def pin_ffmpeg_cpu() -> None:
    """Pin FFmpeg's CPU features to the architecture's baseline, for the AAC encoder opened next.

    Process-wide, and deliberately the same value from every thread. Decoding elsewhere in the process
    is exact whatever the features, only a little slower."""
    avutil = _libavutil()
    detected = avutil.av_get_cpu_flags()
    baseline = _CPU_BASELINE.get(machine(), 0)
    if detected & baseline != baseline:
        raise GenerationError(f"this CPU lacks FFmpeg's baseline features for {machine()} (flags {detected:#x})")
    avutil.av_force_cpu_flags(baseline)


@lru_cache(maxsize=1)
def _libavutil() -> ctypes.CDLL:
    """The libavutil PyAV itself loaded (a second copy would have its own, unpinned, flags)."""
    pkg = Path(av.__file__).parent
    candidates = [*sorted(pkg.parent.glob("av.libs/libavutil*")), *sorted(pkg.glob(".dylibs/libavutil*"))]
    if not candidates and sys.platform.startswith("linux"):  # a PyAV built against system FFmpeg
        maps = Path("/proc/self/maps").read_text()
        candidates = [Path(p) for p in sorted(set(re.findall(r"(/\S*libavutil\.so[.\d]*)$", maps, re.M)))]
    for path in candidates:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        lib.av_get_cpu_flags.restype = ctypes.c_int
        lib.av_force_cpu_flags.argtypes = [ctypes.c_int]
        return lib
    raise GenerationError("cannot pin FFmpeg's CPU features: PyAV's libavutil was not found")


def open_clip(dest: Path) -> av.container.OutputContainer:
    try:
        # bitexact: no library version strings; faststart: moov first, so previews stream.
        return av.open(str(dest), mode="w", format="mp4",
                       container_options={"fflags": "+bitexact", "movflags": "+faststart"})
    except (av.FFmpegError, OSError) as exc:
        raise GenerationError(f"{dest}: cannot write clip ({one_line(exc)})") from None


def add_video(container: av.container.OutputContainer, width: int, height: int, fps: int) -> av.VideoStream:
    options = dict(X264_OPTIONS)
    asm = os.environ.get("S9_X264_ASM")
    if asm:
        options["x264-params"] += f":asm={asm}"
    stream = container.add_stream("libx264", rate=fps, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    # Frame pts are in 1/fps units; the muxer picks its own stream time base when the header is written.
    stream.time_base = Fraction(1, fps)
    ctx = stream.codec_context
    ctx.thread_count = 1  # one thread: the bitstream must not depend on the number of cores
    # Tag what the planes hold (BT.709, limited range) so players show the intended colours.
    ctx.colorspace = ctx.color_primaries = ctx.color_trc = BT709
    ctx.color_range = LIMITED_RANGE
    return stream


def mux_audio(container: av.container.OutputContainer, pcm: np.ndarray) -> None:
    """Encode (2, n) int16 PCM to AAC and mux it; FFmpeg's CPU features must be pinned already."""
    stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
    stream.bit_rate = AUDIO_BITRATE
    stream.codec_context.options = dict(AUDIO_OPTIONS)
    # int16 / 32768 is exact in float32: the encoder's input is the integer PCM, bit for bit.
    samples = pcm.astype(np.float32) * np.float32(1 / 32768)
    for start in range(0, samples.shape[1], _AUDIO_FRAME):
        chunk = np.ascontiguousarray(samples[:, start : start + _AUDIO_FRAME])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        frame.time_base = Fraction(1, SAMPLE_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
