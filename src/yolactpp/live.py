"""Live sources (a webcam, an RTSP/RTMP/UDP/SRT stream, an HLS ``.m3u8`` URL) read through PyAV.

A live source does not wait for the model: a background thread decodes frames as they arrive
and keeps only the newest one. The consumer always gets the most recent frame; frames replaced
before the consumer took them are *dropped* (counted in :attr:`LiveStream.dropped`), so a slow
model falls behind in frame rate, never in latency or memory.

A source that can deliver faster than real time (a recorded HLS playlist, a file served as a
stream) is paced to its timestamps, so it behaves as it would live.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Iterator

import numpy as np

from yolactpp.errors import InvalidArgumentError
from yolactpp.video import VideoError, _av, upright_array

__all__ = ["LiveFrame", "LiveStream", "is_live_source"]

_STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "rtp://", "udp://", "tcp://", "srt://")


def is_live_source(spec: str) -> bool:
    """Whether ``spec`` names a live source: a webcam index (``0``) or device (``/dev/video0``),
    a stream URL (``rtsp://``, ``rtmp://``, ``udp://``, ``tcp://``, ``srt://``...) or an HLS
    playlist URL (``http(s)://....m3u8``). An existing file of that name is a file."""
    text = spec.strip()
    lower = text.lower()
    if text.isdigit() or lower.startswith("/dev/video"):
        return not Path(text).is_file()
    if lower.startswith(_STREAM_SCHEMES):
        return True
    return lower.startswith(("http://", "https://")) and ".m3u8" in lower.split("?", 1)[0]


def _open_arguments(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """(url, container format, demuxer options) for :func:`av.open`."""
    text = spec.strip()
    if text.isdigit() or text.lower().startswith("/dev/video"):
        if sys.platform.startswith("linux"):
            return (f"/dev/video{int(text)}" if text.isdigit() else text), "v4l2", {}
        if sys.platform == "darwin" and text.isdigit():
            return text, "avfoundation", {"framerate": "30"}
        raise VideoError(f"webcam {text!r}: only Linux (/dev/videoN) and macOS (avfoundation) cameras are supported")
    if text.lower().startswith(("rtsp://", "rtsps://")):
        return text, None, {"rtsp_transport": "tcp"}  # TCP: no lost packets, works through NAT
    return text, None, {}


@dataclass(frozen=True)
class LiveFrame:
    """One frame handed to the consumer: RGB uint8 ``[H, W, 3]`` (upright), its 0-based number
    among all frames the source delivered (gaps are dropped frames) and its time in seconds
    since the first frame (stream timestamps when the source has them, else wall clock)."""

    image: np.ndarray
    index: int
    time: float


class LiveStream:
    """Iterate the newest frames of a live source, dropping the ones the consumer is too slow for.

    ``max_frames`` and ``duration`` (seconds since the first frame) bound the iteration; the
    source ending also ends it. ``timeout`` (seconds) bounds opening and each network read. Opening
    happens here, so a wrong URL or a missing camera fails at once with :class:`VideoError`. Use
    as a context manager (or call :meth:`close`); :attr:`delivered`, :attr:`yielded` and
    :attr:`dropped` count frames.
    """

    def __init__(
        self,
        source: str,
        *,
        max_frames: int | None = None,
        duration: float | None = None,
        timeout: float = 10.0,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise InvalidArgumentError(f"max_frames must be >= 1, got {max_frames}")
        if duration is not None and not duration > 0:
            raise InvalidArgumentError(f"duration must be > 0 seconds, got {duration}")
        av = _av()
        self.source = source
        self.max_frames = max_frames
        self.duration = duration
        url, fmt, options = _open_arguments(source)
        try:
            self._container = av.open(url, format=fmt, options=options, timeout=timeout)
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open live source {source}: {exc}") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"live source {source} has no video stream")
        stream = self._container.streams.video[0]
        self.fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
        self.delivered = 0
        self.yielded = 0
        self._last_index = -1
        self.error: str | None = None
        self._latest: LiveFrame | None = None
        self._ended = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=f"yolactpp-live-{source}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Frames skipped so far: delivered by the source up to the last frame handed out, but
        replaced by a newer one before the consumer took them."""
        return self._last_index + 1 - self.yielded

    def _read(self) -> None:
        av = _av()
        start_pts: float | None = None
        start_wall = time.monotonic()
        try:
            for frame in self._container.decode(video=0):
                if self._stop.is_set():
                    break
                if frame.time is not None:
                    start_pts = frame.time if start_pts is None else start_pts
                    stamp = float(frame.time - start_pts)
                    ahead = stamp - (time.monotonic() - start_wall)
                    if ahead > 0 and self._stop.wait(min(ahead, 1.0)):
                        break
                else:
                    stamp = time.monotonic() - start_wall
                item = LiveFrame(upright_array(frame), self.delivered, stamp)
                with self._changed:
                    self._latest = item
                    self.delivered += 1
                    self._changed.notify_all()
        except (av.FFmpegError, OSError) as exc:
            self.error = f"live source {self.source} stopped: {exc}"
        finally:
            self._container.close()
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def __iter__(self) -> Iterator[LiveFrame]:
        first_time: float | None = None
        while not self._stop.is_set():
            if self.max_frames is not None and self.yielded >= self.max_frames:
                return
            with self._changed:
                while self._latest is None and not self._ended and not self._stop.is_set():
                    self._changed.wait(0.1)
                item, self._latest = self._latest, None
            if item is None:
                return  # the source ended (or close() was called) with nothing new
            first_time = item.time if first_time is None else first_time
            if self.duration is not None and item.time - first_time >= self.duration:
                return
            self.yielded += 1
            self._last_index = item.index
            yield item

    def frames(self) -> Iterator[np.ndarray]:
        """Just the images of :meth:`__iter__` (what ``iter_predict`` takes)."""
        return (item.image for item in self)

    def close(self) -> None:
        """Stop reading and release the source (waits up to a few seconds for the reader)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "LiveStream":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LiveStream({self.source!r}, delivered={self.delivered}, yielded={self.yielded}, dropped={self.dropped})"
