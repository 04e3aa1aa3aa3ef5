"""Offline preview clips: render, probe and verify MP4s with PyAV.

The offline backend needs a real video that honours the same contract as the hosted models
(H.264 at the requested size, exact duration, AAC audio when asked), so everything downstream can
be built and tested without a network. `render_clip` makes that video from the scene's first frame:
a slow push-in with the dialogue burned in as a subtitle and a quiet ambient chord. Output is
byte-for-byte deterministic for the same inputs (and the same PyAV/FFmpeg build), so a DVC stage
built on it does not churn.

`probe` and `verify` check any clip, whichever backend produced it.
"""

from __future__ import annotations

import hashlib
import math
import operator
import unicodedata
from array import array
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from s9.errors import GenerationError, InputError

__all__ = ["ClipInfo", "load_first_frame", "probe", "render_clip", "verify"]

# Motion: the frame is pushed in from 1.0x to this zoom over the clip. The source is cover-fitted
# once at this oversize so the last frame is a 1:1 crop rather than an upscale.
_ZOOM_END = 1.12
# Fraction of the margin opened up by the zoom that the pan uses (so the crop never leaves the image).
_PAN_REACH = 0.8

# x264: "superfast" keeps an 8 s 720p clip at >= 4x real time on one core; CRF 23 is x264's default
# quality. One thread so the bitstream does not depend on how many cores the machine has.
_X264_PRESET = "superfast"
_X264_CRF = 23
# Plus macroblock-tree rate control (superfast turns it off): for a slow push-in it cuts the bitrate
# about 3x, and the saved bits pay for the lookahead. No B-frames: with mbtree AND B-frames this x264
# build (core 165) is not reproducible -- the same frames encoded twice in one process can give
# different bytes for sizes such as 720x720 (it depends on heap contents). tests/test_video.py
# guards this.
_X264_PARAMS = "mbtree=1:rc-lookahead=10:bframes=0"

# FFmpeg enum values (AVCOL_SPC/PRI/TRC_BT709 are all 1; AVCOL_RANGE_MPEG is 1).
_BT709 = 1
_LIMITED_RANGE = 1

_SAMPLE_RATE = 48_000
_AUDIO_FRAME = 1024  # the AAC encoder's frame size
_AUDIO_PEAK = 0.18  # about -15 dBFS: audible, never loud
_AUDIO_FADE = 1.5  # seconds of fade-in and fade-out (shortened for very short clips)

# Subtitle look: sizes are fractions of the frame's shorter side so all three aspect ratios match.
_CAPTION_FONT = 1 / 20
_CAPTION_MIN_FONT = 1 / 28
_CAPTION_MAX_LINES = 3
_CAPTION_BAND_ALPHA = 160


@dataclass(frozen=True)
class ClipInfo:
    width: int
    height: int
    duration: float  # seconds, of the container/video stream
    fps: float
    video_codec: str  # e.g. "h264"
    has_audio: bool
    audio_codec: str | None


# --------------------------------------------------------------------------------------------------
# First frame


def load_first_frame(path: Path) -> Image.Image:
    """Load an image as RGB, upright according to its EXIF orientation."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated JPEG only fails here
            upright = ImageOps.exif_transpose(img)
            return upright.convert("RGB")
    except FileNotFoundError:
        raise InputError(f"{path}: not a readable image (file not found)") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (not a format Pillow recognises)") from None
    except (Image.DecompressionBombError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({_one_line(exc)})") from None


def _cover(img: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to fill width x height without distortion, cropping the overflow equally from both sides."""
    src_w, src_h = img.size
    target = width / height
    if src_w / src_h > target:  # too wide: keep full height, crop the sides
        crop_w = src_h * target
        box = ((src_w - crop_w) / 2, 0.0, (src_w + crop_w) / 2, float(src_h))
    else:  # too tall: keep full width, crop top and bottom
        crop_h = src_w / target
        box = (0.0, (src_h - crop_h) / 2, float(src_w), (src_h + crop_h) / 2)
    # reducing_gap makes a large source (e.g. 4K) cheap to shrink with no visible quality loss.
    return img.resize((width, height), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


# --------------------------------------------------------------------------------------------------
# Rendering


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
) -> None:
    """Write a preview MP4 to `dest`: the first frame with a slow push-in, the caption as a subtitle.

    H.264 (yuv420p) at exactly width x height and `fps`, exactly `duration` seconds, plus an AAC
    ambient track when `audio` is true. The same arguments always give the same bytes.
    """
    dest = Path(dest)
    _check_render_args(width=width, height=height, duration=duration, fps=fps)
    source = load_first_frame(Path(first_frame))
    digest = hashlib.sha256(seed.encode("utf-8")).digest()

    # All per-frame work happens on the Y, U and V planes (U and V at half size), so each frame is
    # three single-channel resizes -- about half the pixels of an RGB resize -- and there is no
    # per-frame RGB->YUV conversion at all. The conversion to BT.709 is done once, on the base.
    base_w, base_h = 2 * round(width * _ZOOM_END / 2), 2 * round(height * _ZOOM_END / 2)
    base = _to_yuv420(_cover(source, base_w, base_h))
    band = _caption_overlay(caption, width, height)
    overlay = _overlay_planes(*band) if band is not None else None
    # Pan direction from the seed, so different scenes drift differently but reproducibly.
    angle = 2 * math.pi * int.from_bytes(digest[:4], "big") / 2**32
    pan = (math.cos(angle) * _PAN_REACH, math.sin(angle) * _PAN_REACH)

    n_frames = duration * fps
    try:
        container = av.open(
            str(dest),
            mode="w",
            format="mp4",
            # bitexact: no library version strings; faststart: moov first, so previews stream.
            container_options={"fflags": "+bitexact", "movflags": "+faststart"},
        )
    except (av.FFmpegError, OSError) as exc:
        raise GenerationError(f"{dest}: cannot write clip ({_one_line(exc)})") from None

    try:
        with container:
            x264_options = {"preset": _X264_PRESET, "crf": str(_X264_CRF), "x264-params": _X264_PARAMS}
            vstream = container.add_stream("libx264", rate=fps, options=x264_options)
            vstream.width, vstream.height = width, height
            vstream.pix_fmt = "yuv420p"
            # Keep our own copy: the muxer replaces stream.time_base (e.g. 1/12288) once the header is
            # written, and frame pts must stay in the encoder's 1/fps units.
            video_tb = Fraction(1, fps)
            vstream.time_base = video_tb
            vcc = vstream.codec_context
            vcc.thread_count = 1
            # Tag what the planes hold (BT.709, limited range) so players show the intended colours.
            vcc.colorspace = vcc.color_primaries = vcc.color_trc = _BT709
            vcc.color_range = _LIMITED_RANGE

            astream = None
            samples: tuple[array, array] | None = None
            if audio:
                astream = container.add_stream("aac", rate=_SAMPLE_RATE, layout="stereo")
                astream.bit_rate = 96_000
                samples = _ambient(digest, duration)
            audio_pos = 0
            total_samples = duration * _SAMPLE_RATE

            for i in range(n_frames):
                box = _motion_box(base[0].size, i, n_frames, pan)
                planes = _frame_planes(base, width, height, box)
                if overlay is not None:
                    _paste_overlay(planes, overlay)
                frame = _video_frame(planes, width, height)
                frame.pts = i
                frame.time_base = video_tb
                container.mux(vstream.encode(frame))

                # Interleave: encode audio up to the end of this video frame.
                if astream is not None and samples is not None:
                    until = min(total_samples, (i + 1) * _SAMPLE_RATE // fps)
                    while audio_pos < until:
                        n = min(_AUDIO_FRAME, total_samples - audio_pos)
                        container.mux(astream.encode(_audio_frame(samples, audio_pos, n)))
                        audio_pos += n

            container.mux(vstream.encode(None))
            if astream is not None:
                container.mux(astream.encode(None))
    except av.FFmpegError as exc:
        raise GenerationError(f"{dest}: encoding the preview clip failed ({_one_line(exc)})") from None


def _check_render_args(*, width: int, height: int, duration: int, fps: int) -> None:
    # yuv420p halves the chroma planes, so x264 needs even dimensions.
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 16 or value % 2:
            raise InputError(f"clip {name} must be an even number of pixels >= 16, got {value!r}")
    if not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0:
        raise InputError(f"clip duration must be a positive whole number of seconds, got {duration!r}")
    if not isinstance(fps, int) or isinstance(fps, bool) or fps <= 0:
        raise InputError(f"clip fps must be a positive whole number, got {fps!r}")


_Planes = tuple[Image.Image, Image.Image, Image.Image]  # Y, U, V as "L" images; U and V half size


def _to_yuv420(img: Image.Image) -> _Planes:
    """RGB (even size) -> BT.709 limited-range Y, U, V planes, using the same swscale path as FFmpeg."""
    frame = av.VideoFrame.from_image(img).reformat(
        format="yuv420p",
        dst_colorspace=av.video.reformatter.Colorspace.ITU709,
        dst_color_range=av.video.reformatter.ColorRange.MPEG,
        threads=1,
    )
    w, h = img.size
    sizes = ((w, h), (w // 2, h // 2), (w // 2, h // 2))
    y, u, v = (
        Image.frombuffer("L", size, bytes(plane), "raw", "L", plane.line_size, 1).copy()
        for plane, size in zip(frame.planes, sizes, strict=True)
    )
    return y, u, v


def _motion_box(
    base_size: tuple[int, int], index: int, n_frames: int, pan: tuple[float, float]
) -> tuple[float, float, float, float]:
    """The region of the oversized base that frame `index` of the push-in shows (luma pixels)."""
    t = index / (n_frames - 1) if n_frames > 1 else 0.0
    ease = t * t * (3 - 2 * t)  # smoothstep: the camera eases in and settles, like a real dolly
    zoom = 1 + (_ZOOM_END - 1) * ease
    base_w, base_h = base_size
    crop_w, crop_h = base_w / zoom, base_h / zoom
    # The pan only uses the margin the zoom has opened, so the crop never leaves the picture.
    cx = base_w / 2 + pan[0] * (base_w - crop_w) / 2
    cy = base_h / 2 + pan[1] * (base_h - crop_h) / 2
    return (cx - crop_w / 2, cy - crop_h / 2, cx + crop_w / 2, cy + crop_h / 2)


def _frame_planes(base: _Planes, width: int, height: int, box: tuple[float, float, float, float]) -> _Planes:
    """One crop+resize per plane. The float box gives smooth sub-pixel motion; BILINEAR is cheap and,
    unlike BOX (which degenerates to nearest-neighbour near 1:1, so the motion would step), stays
    smooth over the whole 1/1.12..1 scale range."""
    x0, y0, x1, y1 = box
    half = (x0 / 2, y0 / 2, x1 / 2, y1 / 2)
    bilinear = Image.Resampling.BILINEAR
    return (
        base[0].resize((width, height), bilinear, box=box),
        base[1].resize((width // 2, height // 2), bilinear, box=half),
        base[2].resize((width // 2, height // 2), bilinear, box=half),
    )


def _video_frame(planes: _Planes, width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, img in zip(frame.planes, planes, strict=True):
        if plane.line_size != img.width:  # FFmpeg pads rows for alignment (e.g. 360 -> 368)
            img = img.crop((0, 0, plane.line_size, img.height))
        plane.update(img.tobytes())
    frame.colorspace = _BT709
    frame.color_range = _LIMITED_RANGE
    return frame


# --------------------------------------------------------------------------------------------------
# Caption


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font (>=10.1) is always there; system fonts are not.
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: only the small bitmap font
        return ImageFont.load_default()


# The bundled font covers ASCII plus curly quotes and a few marks, nothing else; typographic
# punctuation and letters without a decomposition are spelled with glyphs it has.
_FALLBACK = {
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u00ab": '"', "\u00bb": '"', "\u201e": '"', "\u201a": "'", "\u2039": "'",
    "\u203a": "'", "\u2022": "*", "\u00a1": "!", "\u00bf": "?", "\u00df": "ss", "\u00e6": "ae",
    "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE", "\u00f8": "o", "\u00d8": "O", "\u0142": "l",
    "\u0141": "L", "\u0111": "d", "\u0110": "D", "\u00f0": "d", "\u00d0": "D", "\u00fe": "th",
    "\u00de": "Th", "\u20ac": "EUR", "\u00a3": "GBP", "\u00a9": "(c)", "\u00ae": "(R)",
    "\u2122": "TM", "\u00b0": " deg",
}  # fmt: skip


@lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    # A character the font lacks renders as its .notdef box: compare against a noncharacter's mask.
    font = _font(24)
    mask, notdef = font.getmask(ch), font.getmask("\uffff")
    return (mask.size, bytes(mask)) != (notdef.size, bytes(notdef))


def _displayable(text: str) -> str:
    """Spell characters the font lacks with ones it has: é -> e, — -> -, ß -> ss. Anything still
    missing (CJK, emoji) is kept and shows as a box, so the subtitle never silently drops words."""
    out = []
    for ch in text:
        if ch.isascii() or _has_glyph(ch):
            out.append(ch)
        elif ch in _FALLBACK:
            out.append(_FALLBACK[ch])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and all(c.isascii() or _has_glyph(c) for c in base) else ch)
    return "".join(out)


def _clean_caption(caption: str) -> list[str]:
    """Paragraphs of the caption with whitespace collapsed and control characters dropped."""
    paragraphs = []
    for para in caption.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        text = " ".join("".join(ch if ch.isprintable() else " " for ch in para).split())
        if text:
            paragraphs.append(_displayable(text))
    return paragraphs


def _wrap(paragraphs: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_w: float) -> list[str]:
    lines: list[str] = []
    for para in paragraphs:
        line = ""
        for word in para.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_w:
                line = candidate
                continue
            if line:
                lines.append(line)
            # A word wider than the line (a URL, a long compound) is broken by characters.
            while font.getlength(word) > max_w and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and font.getlength(word[:cut]) > max_w:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
    return lines


def _fit_caption(
    paragraphs: list[str], width: int, height: int
) -> tuple[list[str], ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """Wrap to the frame, shrinking the font a little for long lines and ellipsizing as a last resort."""
    short = min(width, height)
    max_w = width * 0.86
    size = max(12, round(short * _CAPTION_FONT))
    min_size = max(12, round(short * _CAPTION_MIN_FONT))
    while True:
        font = _font(size)
        lines = _wrap(paragraphs, font, max_w)
        if len(lines) <= _CAPTION_MAX_LINES or size <= min_size:
            break
        size = max(min_size, size - 2)
    if len(lines) > _CAPTION_MAX_LINES:
        lines = lines[:_CAPTION_MAX_LINES]
        last = lines[-1]
        while last and font.getlength(last + "…") > max_w:
            last = last[:-1].rstrip()
        lines[-1] = last + "…"
    return lines, font


def _caption_overlay(caption: str, width: int, height: int) -> tuple[Image.Image, tuple[int, int]] | None:
    """The subtitle as an RGBA band (drawn once per clip) and where to paste it, or None if no caption."""
    paragraphs = _clean_caption(caption)
    if not paragraphs:
        return None
    lines, font = _fit_caption(paragraphs, width, height)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (11, 0)
    line_h = round((ascent + descent) * 1.2)
    pad_x, pad_y = round(line_h * 0.7), round(line_h * 0.35)
    text_w = max(math.ceil(font.getlength(line)) for line in lines)
    # Even sizes and positions so the band maps exactly onto the half-size chroma planes.
    band_w = min(width, _even_up(text_w + 2 * pad_x))
    band_h = _even_up(line_h * len(lines) + 2 * pad_y - (line_h - ascent - descent))

    band = Image.new("RGBA", (band_w, band_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(band)
    draw.rounded_rectangle(
        (0, 0, band_w - 1, band_h - 1), radius=round(line_h * 0.3), fill=(0, 0, 0, _CAPTION_BAND_ALPHA)
    )
    for n, line in enumerate(lines):
        x = (band_w - font.getlength(line)) / 2
        draw.text((x, pad_y + n * line_h), line, font=font, fill=(255, 255, 255, 255))

    bottom_margin = round(height * 0.06)
    x, y = (width - band_w) // 2, max(0, height - bottom_margin - band_h)
    return band, (x - x % 2, y - y % 2)


def _even_up(n: int) -> int:
    return n + n % 2


# Caption as planes: Y, U, V of the band's colours, its alpha at full and at half size, position.
_Overlay = tuple[_Planes, Image.Image, Image.Image, tuple[int, int]]


def _overlay_planes(band: Image.Image, pos: tuple[int, int]) -> _Overlay:
    alpha = band.getchannel("A")
    half_alpha = alpha.resize((band.width // 2, band.height // 2), Image.Resampling.BOX)
    return _to_yuv420(band.convert("RGB")), alpha, half_alpha, pos


def _paste_overlay(planes: _Planes, overlay: _Overlay) -> None:
    """Alpha-blend the caption band into the frame's planes in place (blending commutes with the
    affine RGB->YUV conversion, so this equals blending in RGB)."""
    (band_y, band_u, band_v), alpha, half_alpha, (x, y) = overlay
    planes[0].paste(band_y, (x, y), alpha)
    planes[1].paste(band_u, (x // 2, y // 2), half_alpha)
    planes[2].paste(band_v, (x // 2, y // 2), half_alpha)


# --------------------------------------------------------------------------------------------------
# Audio

# Chord roots (Hz, rounded to whole numbers: see _ambient) and chord shapes as frequency ratios.
_ROOTS = (110, 123, 131, 147, 165, 175, 196)  # A2 B2 C3 D3 E3 F3 G3
_CHORDS = (
    (1, 5 / 4, 3 / 2, 2),  # major
    (1, 6 / 5, 3 / 2, 2),  # minor
    (1, 9 / 8, 3 / 2, 2),  # sus2
    (1, 5 / 4, 3 / 2, 15 / 8),  # major seventh
)


def _ambient(digest: bytes, duration: int) -> tuple[array, array]:
    """A soft stereo pad: a chord chosen from the seed, gently beating, with a fade-in and fade-out.

    Every partial has a whole-number frequency, so the mix repeats exactly every second: one
    second is synthesised and tiled, which keeps pure-Python synthesis cheap (no numpy needed).
    """
    root = _ROOTS[digest[4] % len(_ROOTS)]
    chord = _CHORDS[digest[5] % len(_CHORDS)]
    voices = []  # (frequency, left gain, right gain)
    for k, ratio in enumerate(chord):
        freq = round(root * ratio)
        gain = 1.0 / (1 + 0.6 * k)  # upper notes quieter
        pan = (digest[6 + k] / 255 - 0.5) * 0.8  # spread across the stereo field
        voices.append((freq, gain * (1 - pan), gain * (1 + pan)))
        voices.append((freq * 2, gain * 0.12, gain * 0.12))  # a touch of octave for warmth
    top = voices[-2]
    voices.append((top[0] + 1, top[1] * 0.5, top[2] * 0.5))  # 1 Hz beat: slow shimmer

    # Each voice repeats every sr/gcd(freq, sr) samples: synthesise one repeat from a sine table and
    # tile it, so only ~50k sines are ever computed and the mixing runs in C (map/operator).
    sr = _SAMPLE_RATE
    table = _sine_table()
    left = [0.0] * sr
    right = [0.0] * sr
    for freq, gain_l, gain_r in voices:
        repeats = math.gcd(freq, sr)
        wave = [table[freq * n % sr] for n in range(sr // repeats)]
        left = list(map(operator.add, left, [gain_l * x for x in wave] * repeats))
        right = list(map(operator.add, right, [gain_r * x for x in wave] * repeats))
    peak = max(max(map(abs, left)), max(map(abs, right))) or 1.0
    scale = _AUDIO_PEAK / peak
    out_l = array("f", [x * scale for x in left]) * duration
    out_r = array("f", [x * scale for x in right]) * duration

    # Raised-cosine fades so the clip never starts or stops with a click.
    total = len(out_l)
    fade = min(int(_AUDIO_FADE * sr), total // 4)
    ramp = [0.5 - 0.5 * math.cos(math.pi * n / fade) for n in range(fade)]
    for out in (out_l, out_r):
        out[:fade] = array("f", map(operator.mul, out[:fade], ramp))
        out[total - fade :] = array("f", map(operator.mul, out[total - fade :], reversed(ramp)))
    return out_l, out_r


@lru_cache(maxsize=1)
def _sine_table() -> list[float]:
    return [math.sin(2 * math.pi * k / _SAMPLE_RATE) for k in range(_SAMPLE_RATE)]


def _audio_frame(samples: tuple[array, array], start: int, count: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="fltp", layout="stereo", samples=count)
    for plane, channel in zip(frame.planes, samples, strict=True):
        plane.update(channel[start : start + count].tobytes())
    frame.sample_rate = _SAMPLE_RATE
    frame.pts = start
    frame.time_base = Fraction(1, _SAMPLE_RATE)
    return frame


# --------------------------------------------------------------------------------------------------
# Probing and verification


def probe(path: Path) -> ClipInfo:
    """Describe an MP4 clip; raise GenerationError if it is not a complete, readable MP4 with video."""
    return _probe(Path(path))[0]


def verify(
    path: Path,
    *,
    duration: float,
    audio: bool,
    tolerance: float = 0.5,
    width: int | None = None,
    height: int | None = None,
) -> ClipInfo:
    """Check a clip against what was asked for; raise GenerationError naming the first problem."""
    path = Path(path)
    info, audio_duration = _probe(path)
    if abs(info.duration - duration) > tolerance:
        raise GenerationError(f"{path}: duration {info.duration:.2f} s vs expected {duration:g} s")
    if audio and not info.has_audio:
        raise GenerationError(f"{path}: missing audio stream (the scene asks for audio)")
    if audio and audio_duration is not None and audio_duration < duration - tolerance:
        raise GenerationError(f"{path}: audio lasts {audio_duration:.2f} s vs expected {duration:g} s")
    if (width is not None and info.width != width) or (height is not None and info.height != height):
        expected = f"{width if width is not None else 'any'}x{height if height is not None else 'any'}"
        raise GenerationError(f"{path}: wrong size {info.width}x{info.height}, expected {expected}")
    return info


def _probe(path: Path) -> tuple[ClipInfo, float | None]:
    """ClipInfo plus the audio stream's duration (None if no audio or unknown)."""
    if not path.is_file():
        why = "not a regular file" if path.exists() else "file not found"
        raise GenerationError(f"{path}: not a readable MP4 ({why})")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise GenerationError(f"{path}: not a readable MP4 ({_one_line(exc)})") from None
    with container:
        if "mp4" not in container.format.name.split(","):
            raise GenerationError(f"{path}: not an MP4 (it is {container.format.long_name or container.format.name})")
        if not container.streams.video:
            raise GenerationError(f"{path}: no video stream")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None

        v_declared = _stream_seconds(vstream)
        if v_declared is None and container.duration is not None:
            v_declared = container.duration / av.time_base
        a_declared = _stream_seconds(astream) if astream is not None else None

        # The header can describe data that is not there (a download cut short of a "faststart" MP4
        # still opens fine), so demux every packet -- no decoding, cheap -- and see where data ends.
        v_end, a_end = _packet_extents(path, container, vstream, astream)
        if v_end is None:
            raise GenerationError(f"{path}: truncated or empty: the video stream has no frames")
        frame_s = 1 / float(vstream.average_rate or vstream.guessed_rate or 24)
        if v_declared is not None and v_end < v_declared - max(0.1, 2 * frame_s):
            raise GenerationError(
                f"{path}: truncated: video data ends at {v_end:.2f} s but the file says {v_declared:.2f} s"
            )
        if a_declared is not None and a_end is not None and a_end < a_declared - 0.1:
            raise GenerationError(
                f"{path}: truncated: audio data ends at {a_end:.2f} s but the file says {a_declared:.2f} s"
            )

        rate = vstream.average_rate or vstream.guessed_rate
        info = ClipInfo(
            width=vstream.codec_context.width,
            height=vstream.codec_context.height,
            duration=round(v_declared if v_declared is not None else v_end, 6),
            fps=round(float(rate), 6) if rate else 0.0,
            video_codec=vstream.codec_context.name,
            has_audio=astream is not None,
            audio_codec=astream.codec_context.name if astream is not None else None,
        )
        audio_duration = a_declared if a_declared is not None else a_end
        return info, audio_duration


def _stream_seconds(stream: av.stream.Stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _packet_extents(
    path: Path, container: av.container.InputContainer, vstream: av.stream.Stream, astream: av.stream.Stream | None
) -> tuple[float | None, float | None]:
    """End time (s, from each stream's start) of the last packet actually present, per stream."""
    streams = [vstream] + ([astream] if astream is not None else [])
    ends: dict[int, float] = {}
    try:
        for packet in container.demux(streams):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None or packet.size == 0:
                continue  # the flush packet demux() yields at the end
            stream = packet.stream
            start = stream.start_time or 0
            end = float((ts - start + (packet.duration or 0)) * stream.time_base)
            if end > ends.get(stream.index, -1.0):
                ends[stream.index] = end
    except av.FFmpegError as exc:
        raise GenerationError(f"{path}: corrupt MP4 data ({_one_line(exc)})") from None
    return ends.get(vstream.index), ends.get(astream.index) if astream is not None else None


def _one_line(exc: BaseException) -> str:
    # FFmpeg errors stringify as "[Errno -1094995529] Invalid data ...: '<path>'"; the path is
    # already in our message, so keep just the reason.
    reason = exc.strerror if isinstance(exc, av.FFmpegError | OSError) and exc.strerror else str(exc)
    text = " ".join(str(reason).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
