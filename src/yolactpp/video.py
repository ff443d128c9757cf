"""Reading and writing videos as RGB uint8 frames, through PyAV (the ``video`` extra).

Frames are read in their displayed orientation: a rotation in the video's metadata (the display
matrix phones write for portrait videos) is applied to the pixels, so what the model sees, the
detections and an annotated copy are all upright, as a player shows the video.

PyAV is imported on first use; without it a clear ``ImportError`` says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from yolactpp._facts import VIDEO_SUFFIXES
from yolactpp.errors import MissingDependencyError, MissingFileError, YolactppError

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "VideoWriter",
    "frame_rotation",
    "probe_video",
    "read_frames",
    "upright_array",
]

#: File suffixes treated as videos (lower case).

_DEFAULT_FPS = Fraction(25)


class VideoError(YolactppError, ValueError):
    """A video file that cannot be read or written."""


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise MissingDependencyError(
            "video support needs PyAV: pip install 'yolactpp[video]' (or pip install av)"
        ) from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """Frame rate, frame count (``None`` when the container does not say) and the displayed frame
    size; ``rotation`` is the counter-clockwise turn (degrees) applied to the stored frames."""

    fps: Fraction
    frames: int | None
    width: int
    height: int
    rotation: int = 0


def frame_rotation(frame: Any) -> int:
    """The counter-clockwise rotation (0, 90, 180 or 270 degrees) that shows ``frame`` upright,
    from its display matrix; 0 without one (or with a PyAV too old to read it)."""
    try:
        degrees = float(getattr(frame, "rotation", 0) or 0)
    except Exception:  # a malformed display matrix is treated as none
        return 0
    return round(degrees / 90.0) % 4 * 90


def upright_array(frame: Any) -> np.ndarray:
    """A decoded PyAV video frame as an RGB uint8 ``[H, W, 3]`` array in its displayed orientation."""
    array = frame.to_ndarray(format="rgb24")
    turns = frame_rotation(frame) // 90
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _open(path: str | os.PathLike[str]) -> Any:
    av = _av()
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"video file not found: {p}")
    try:
        container = av.open(str(p))
    except av.FFmpegError as exc:
        raise VideoError(f"cannot read {p} as a video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{p} has no video stream")
    return container


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's :class:`VideoInfo`, decoding its first frame only (for the rotation)."""
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or _DEFAULT_FPS
        width, height, rotation = stream.width, stream.height, 0
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError:
            first = None  # read_frames names the decoding error
        if first is not None:
            rotation = frame_rotation(first)
            width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        return VideoInfo(Fraction(rate), int(stream.frames) or None, width, height, rotation)
    finally:
        container.close()


def read_frames(path: str | os.PathLike[str]) -> Generator[np.ndarray, None, None]:
    """Decode a video lazily into RGB uint8 ``[H, W, 3]`` frames, upright (the metadata rotation
    applied); the file closes when done."""
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield upright_array(frame)
        except av.FFmpegError as exc:
            raise VideoError(f"error while decoding {path}: {exc}") from None
    finally:
        container.close()


class VideoWriter:
    """Encode RGB uint8 frames to a video file (H.264 where available, else MPEG-4).

    The encoders need even frame sizes: an odd width or height gains one replicated edge column
    or row. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], fps: Fraction | float, width: int, height: int) -> None:
        av = _av()
        self.path = Path(path)
        self.width, self.height = width + width % 2, height + height % 2
        self._container = av.open(str(self.path), mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(fps).limit_denominator(1001) if fps else _DEFAULT_FPS
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._av = av
        self.frames_written = 0
        self._rate = rate
        self._last_pts = -1

    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Append one RGB uint8 ``[H, W, 3]`` frame (the size given at construction).

        ``time`` (seconds from the start) places the frame on the timeline, so a stream with
        dropped frames plays at its real speed (each frame shows until the next); by default
        frames follow each other at the frame rate."""
        h, w = frame.shape[:2]
        if (h + h % 2, w + w % 2) != (self.height, self.width):
            raise VideoError(f"frame is {w} x {h}, the video {self.width} x {self.height}")
        if (h, w) != (self.height, self.width):
            frame = np.pad(frame, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        video_frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        pts = self._last_pts + 1
        if time is not None:
            pts = max(pts, round(time * self._rate))
        video_frame.pts = self._last_pts = pts
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
