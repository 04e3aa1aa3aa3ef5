"""Same bytes on every CPU: the sample concept rendered in subprocesses that each emulate another machine.

Each subprocess forces the CPU features every SIMD-dispatching library in the renderer sees: FFmpeg
(`av_force_cpu_flags` through ctypes on the wheel's libavutil, before the renderer runs), x264
(`S9_X264_ASM`, an x264 `asm=` value), glibc's libm/string variants (`GLIBC_TUNABLES`), numpy's
dispatched loops (`NPY_DISABLE_CPU_FEATURES`) and libjpeg-turbo (`JSIMD_FORCE*`). Every emulation must give
the same MD5 for every clip. An emulation asks only for features this CPU has (forcing a missing one would
crash, not emulate), so on a machine without AVX-512 that level is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "data/s7_scene_prompts/sample_batch/watchmaker_journey/watchmaker_journey_scene_prompts.json"
FRAMES = "data/s8_first_frames/sample_batch/watchmaker_journey"

# FFmpeg's AV_CPU_FLAG_* bits (libavutil/cpu.h).
MMX, MMXEXT, SSE, SSE2, SSE3, SSSE3, SSE4, SSE42 = 0x1, 0x2, 0x8, 0x10, 0x40, 0x80, 0x100, 0x200
CMOV, AVX, AVX2, FMA3, BMI1, BMI2, AVX512 = 0x1000, 0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x100000
FF_SSE2 = MMX | MMXEXT | SSE | SSE2 | CMOV
FF_AVX2 = FF_SSE2 | SSE3 | SSSE3 | SSE4 | SSE42 | AVX | AVX2 | FMA3 | BMI1 | BMI2
FF_AVX512 = FF_AVX2 | AVX512

# name: (CPU flags it needs, FFmpeg flags, x264 asm, extra environment)
EMULATIONS = {
    "sse2": (
        {"sse2"},
        FF_SSE2,
        "SSE2",
        {
            "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX2,-FMA,-AVX,-SSE4_2,-SSE4_1,-SSSE3",
            "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
            "JSIMD_FORCESSE2": "1",
        },
    ),
    "avx2": (
        {"avx2", "fma"},
        FF_AVX2,
        "AVX2",
        {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
    ),
    "avx512": ({"avx512f", "avx512bw"}, FF_AVX512, "AVX512", {}),
    "no-asm": (set(), FF_SSE2, "0", {"JSIMD_FORCENONE": "1"}),
    "native": (set(), None, None, {}),
}

# Renders each sample scene (2 s each: the same code path as 8 s, a quarter of the time), in the clip's
# own 16:9 and in portrait (the contain-over-fill path), and prints {name: md5}.
RENDER = r"""
import ctypes, hashlib, json, sys
from pathlib import Path
import av

flags = int(sys.argv[1])
if flags >= 0:
    libs = sorted((Path(av.__file__).parent.parent / "av.libs").glob("libavutil*"))
    lib = ctypes.CDLL(str(libs[0]))
    lib.av_force_cpu_flags.argtypes = [ctypes.c_int]
    lib.av_force_cpu_flags(flags)

from s9.video import render_clip

prompts, frames, out = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
concept = json.loads(prompts.read_text())
sums = {}
for scene in concept["scenes"]:
    n = scene["scene_number"]
    for size in ((1280, 720), (720, 1280)) if n in (1, 4) else ((1280, 720),):
        dest = out / f"p{n}_{size[0]}x{size[1]}.mp4"
        render_clip(dest, first_frame=frames / f"{concept['concept']}_p{n}_first_frame.jpg", width=size[0],
                    height=size[1], duration=2, caption=scene.get("audio_dialogue", ""), audio=n != 3,
                    seed=f"{concept['concept']}_p{n}")
        sums[dest.name] = hashlib.md5(dest.read_bytes()).hexdigest()
print(json.dumps(sums))
"""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def libavutil_in_wheel() -> bool:
    import av

    return any((Path(av.__file__).parent.parent / "av.libs").glob("libavutil*"))


def render_sample(tmp: Path, flags: int | None, asm: str | None, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("S9_X264_ASM", "GLIBC_TUNABLES")}
    env.update(extra)
    if asm is not None:
        env["S9_X264_ASM"] = asm
    tmp.mkdir()
    args = [sys.executable, "-c", RENDER, str(-1 if flags is None else flags), str(REPO / SAMPLE),
            str(REPO / FRAMES), str(tmp)]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="x86-64 emulations")
@pytest.mark.skipif(not libavutil_in_wheel(), reason="PyAV is not the binary wheel (no av.libs/libavutil)")
def test_sample_is_byte_identical_across_cpu_levels(tmp_path: Path) -> None:
    have = cpu_flags()
    runs = {}
    for name, (needs, flags, asm, extra) in EMULATIONS.items():
        if needs <= have:
            runs[name] = render_sample(tmp_path / name, flags, asm, extra)
    assert {"sse2", "native", "no-asm"} <= runs.keys()
    reference = runs["native"]
    assert len(reference) == 7
    for name, sums in runs.items():
        differing = sorted(clip for clip in reference if sums.get(clip) != reference[clip])
        assert not differing, f"{name} differs from the native CPU in {differing}"
