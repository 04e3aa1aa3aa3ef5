"""Probe and verify any MP4 clip (whichever backend made it) with PyAV: complete, right size, duration, audio."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from s9.errors import GenerationError


@dataclass(frozen=True)
class ClipInfo:
    width: int
    height: int
    duration: float  # seconds, of the container/video stream
    fps: float
    video_codec: str  # e.g. "h264"
    has_audio: bool
    audio_codec: str | None



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
        raise GenerationError(f"{path}: not a readable MP4 ({one_line(exc)})") from None
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
        raise GenerationError(f"{path}: corrupt MP4 data ({one_line(exc)})") from None
    return ends.get(vstream.index), ends.get(astream.index) if astream is not None else None


def one_line(exc: BaseException) -> str:
    # FFmpeg errors stringify as "[Errno -1094995529] Invalid data ...: '<path>'"; the path is
    # already in our message, so keep just the reason.
    reason = exc.strerror if isinstance(exc, av.FFmpegError | OSError) and exc.strerror else str(exc)
    text = " ".join(str(reason).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def last_frame(path: Path) -> Image.Image:
    """The clip's last video frame as an RGB image (for contact sheets); GenerationError if it cannot be read.

    Seeks a second before the end and decodes from the keyframe there, so a long clip is not decoded whole."""
    path = Path(path)
    try:
        with av.open(str(path), mode="r") as container:
            stream = container.streams.video[0]
            seconds = _stream_seconds(stream) or (container.duration or 0) / av.time_base
            if stream.time_base and seconds > 1.0:
                container.seek(int((seconds - 1.0) / stream.time_base), stream=stream, backward=True)
            last = None
            for frame in container.decode(stream):
                last = frame
            if last is None:
                raise GenerationError(f"{path}: no video frame to read")
            return last.to_image().convert("RGB")
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise GenerationError(f"{path}: could not read its last frame ({one_line(exc)})") from None
