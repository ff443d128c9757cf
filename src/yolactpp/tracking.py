"""Track ids across video frames with ByteTrack, from roboflow's ``trackers`` package.

``trackers`` (the successor of supervision's ``ByteTrack``, by the same maintainers) is imported on
first use (the ``track`` extra). ByteTrack matches boxes frame to frame; it does not look at
classes or masks. A detection not matched to a confirmed track gets id ``-1``: that is every
detection of the first frame, and the first frame of each new object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from yolactpp.errors import InvalidArgumentTypeError, MissingDependencyError
from yolactpp.results import Detections, _is_tensor

__all__ = ["Tracker", "with_tracks"]


def _import_trackers() -> Any:
    try:
        import supervision
        import trackers
    except ImportError:
        raise MissingDependencyError(
            "tracking needs trackers: pip install 'yolactpp[track]' (or pip install trackers)"
        ) from None
    return supervision, trackers


class Tracker:
    """Give the detections of consecutive frames of one video stable ``track_ids``.

    ``frame_rate`` is the video's (it scales how long a lost track is remembered); ``settings``
    go to ``trackers.ByteTrackTracker`` (e.g. ``lost_track_buffer``, ``track_activation_threshold``,
    ``minimum_iou_threshold``). A track is confirmed on its second frame
    (``minimum_consecutive_frames=1``, set explicitly so a change of that class's default cannot
    delay it). Use one tracker per video, or call
    :meth:`reset` between videos.
    """

    def __init__(self, frame_rate: float = 30.0, **settings: Any) -> None:
        sv, trackers = _import_trackers()
        settings.setdefault("minimum_consecutive_frames", 1)
        self._sv = sv
        self._tracker = trackers.ByteTrackTracker(frame_rate=float(frame_rate), **settings)

    def update(self, detections: Detections) -> Detections:
        """The next frame's detections, in the same order, with ``track_ids`` set."""
        arrays = detections.numpy(masks=False)
        n = len(arrays)
        sv_detections = self._sv.Detections(
            xyxy=arrays.boxes.astype(np.float32).reshape(-1, 4),
            confidence=arrays.scores.astype(np.float32),
            class_id=arrays.labels.astype(int),
            data={"index": np.arange(n)},
        )
        tracked = self._tracker.update(sv_detections)
        ids = np.full(n, -1, dtype=np.int64)
        if len(tracked):
            ids[np.asarray(tracked.data["index"], dtype=np.int64)] = np.asarray(tracked.tracker_id, dtype=np.int64)
        if not _is_tensor(detections.scores):  # numpy-backed detections (an exported, torch-free model)
            return detections._replace(track_ids=ids)
        import torch

        return detections._replace(track_ids=torch.from_numpy(ids).to(detections.scores.device))

    def reset(self) -> None:
        """Forget every track (before a new video)."""
        self._tracker.reset()


def with_tracks(stream: Iterator[Any], track: bool | Tracker) -> Iterator[Any]:
    """``stream`` with track ids when ``track`` is ``True`` (a new :class:`Tracker`) or a tracker;
    unchanged when ``False``. The ``track`` argument of every ``iter_predict``; items that are not
    :class:`Detections` (a ``PredictionFailure`` with ``on_error="yield"``) pass through untracked."""
    if track is False:
        return stream
    if track is True:
        track = Tracker()
    elif not isinstance(track, Tracker):
        raise InvalidArgumentTypeError(
            f"track must be True, False or a yolactpp.tracking.Tracker, got {type(track).__name__}"
        )
    tracker = track
    return (tracker.update(r) if isinstance(r, Detections) else r for r in stream)  # failures are not frames
