"""The ambient track: a soft stereo chord chosen from the seed, as 16-bit PCM computed in integers only.

The sine table comes from an exact integer rotation (Python integers, no libm) and the mix is integer
numpy, so the PCM is the same on every machine; `encode.py` keeps the AAC encoding of it CPU-independent.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 48_000
_PEAK = 5_898  # 0.18 of full scale (about -15 dBFS): audible, never loud
_FADE = 72_000  # samples of fade-in and fade-out (1.5 s; shortened for very short clips)
_GAIN_ONE = 1 << 12  # voice gains in 4.12 fixed point

# Chord roots (whole Hz, so the mix repeats every second and one second is tiled) and chord shapes.
_ROOTS = (110, 123, 131, 147, 165, 175, 196)  # A2 B2 C3 D3 E3 F3 G3
_CHORDS = (
    (Fraction(1), Fraction(5, 4), Fraction(3, 2), Fraction(2)),  # major
    (Fraction(1), Fraction(6, 5), Fraction(3, 2), Fraction(2)),  # minor
    (Fraction(1), Fraction(9, 8), Fraction(3, 2), Fraction(2)),  # sus2
    (Fraction(1), Fraction(5, 4), Fraction(3, 2), Fraction(15, 8)),  # major seventh
)

# pi to 50 places: enough for a sine table exact to far below its 15-bit rounding.
_PI = Fraction(314159265358979323846264338327950288419716939937510, 10**50)


def ambient(digest: bytes, duration: int) -> np.ndarray:
    """(2, duration * 48000) int16: a chord from the seed, gently beating, faded in and out."""
    root = _ROOTS[digest[8] % len(_ROOTS)]
    chord = _CHORDS[digest[9] % len(_CHORDS)]
    voices = []  # (frequency Hz, left gain, right gain), gains as Fractions
    for k, ratio in enumerate(chord):
        freq = round(root * ratio)
        gain = 1 / (1 + Fraction(3, 5) * k)  # upper notes quieter
        pan = (Fraction(digest[10 + k], 255) - Fraction(1, 2)) * Fraction(4, 5)  # spread across the field
        voices.append((freq, gain * (1 - pan), gain * (1 + pan)))
        voices.append((2 * freq, gain * Fraction(3, 25), gain * Fraction(3, 25)))  # a touch of octave
    top = voices[-2]
    voices.append((top[0] + 1, top[1] / 2, top[2] / 2))  # 1 Hz beat against the top note: a slow shimmer

    table = _sine_table()
    n = np.arange(SAMPLE_RATE, dtype=np.int64)
    mix = np.zeros((2, SAMPLE_RATE), dtype=np.int64)
    for freq, left, right in voices:
        wave = table[freq * n % SAMPLE_RATE]
        mix[0] += wave * round(left * _GAIN_ONE)
        mix[1] += wave * round(right * _GAIN_ONE)
    peak = int(np.abs(mix).max()) or 1
    second = (mix * _PEAK + peak // 2) // peak
    pcm = np.tile(second, (1, duration))

    # Fade in and out (smoothstep, in 1.15 fixed point) so the clip never starts or stops with a click.
    fade = min(_FADE, pcm.shape[1] // 4)
    if fade > 0:
        t = (np.arange(fade, dtype=np.int64) << 16) // fade  # 0..1 in 16.16
        ramp = (t * t >> 16) * (3 * (1 << 16) - 2 * t) >> 17  # 3t^2 - 2t^3, in 1.15
        pcm[:, :fade] = pcm[:, :fade] * ramp >> 15
        pcm[:, -fade:] = pcm[:, -fade:] * ramp[::-1] >> 15
    return pcm.astype(np.int16)


@lru_cache(maxsize=1)
def _sine_table() -> np.ndarray:
    """sin(2 pi k / 48000) for k = 0..47999 in 1.15 fixed point, in integers only: the angle k is split into
    coarse (multiples of 100 steps) and fine parts, whose sines and cosines come from exact rotations in
    Python integers, and are combined by the angle-sum formula in int64."""
    c1, s1 = _rotation(2 * _PI / SAMPLE_RATE)
    fine = _rotations(c1, s1, 100)
    coarse = _rotations(*fine[-1], SAMPLE_RATE // 100)  # steps of 100
    to30 = 1 << (_BITS - 30)
    fc = np.array([(c + to30 // 2) // to30 for c, _ in fine[:100]], dtype=np.int64)
    fs = np.array([(s + to30 // 2) // to30 for _, s in fine[:100]], dtype=np.int64)
    cc = np.array([(c + to30 // 2) // to30 for c, _ in coarse[:-1]], dtype=np.int64)
    cs = np.array([(s + to30 // 2) // to30 for _, s in coarse[:-1]], dtype=np.int64)
    sines = cs[:, None] * fc[None, :] + cc[:, None] * fs[None, :]  # sin(a + b), 2.60 fixed point
    return ((sines + (1 << 44)) >> 45).reshape(-1)


_BITS = 96


def _rotation(angle: Fraction) -> tuple[int, int]:
    """cos and sin of a small angle by their Taylor series, in 96-bit fixed point."""
    one = 1 << _BITS
    x = int(angle * one)
    c, s, term, k = 0, 0, one, 0
    while term:
        if k % 2 == 0:
            c += term if k % 4 == 0 else -term
        else:
            s += term if k % 4 == 1 else -term
        k += 1
        term = term * x // (one * k)
    return c, s


def _rotations(c: int, s: int, count: int) -> list[tuple[int, int]]:
    """(cos, sin) of 0, 1, ..., count times the angle whose (cos, sin) is given."""
    out, cn, sn = [], 1 << _BITS, 0
    for _ in range(count + 1):
        out.append((cn, sn))
        cn, sn = (cn * c - sn * s) >> _BITS, (sn * c + cn * s) >> _BITS
    return out
