"""``yolactpp predict`` on videos and live sources (webcams, streams): frames in, one JSON line per
frame, an annotated video and optional CSV out; Ctrl-C stops cleanly with the files complete."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp.cli._predict_images import progress
from yolactpp.cli._predict_outputs import detections_table, write_csv

if TYPE_CHECKING:
    from yolactpp.predict_options import PredictOptions

__all__ = ["Frames", "live_name", "run_video", "split_live"]


class Frames:
    """A video file or live source as (frame number, time in seconds, RGB frame), with its bounds."""

    def __init__(self, source: str, args: argparse.Namespace) -> None:
        from yolactpp.live import LiveStream, is_live_source

        self.source = source
        self.live: Any = None
        if is_live_source(source):
            self.live = LiveStream(source, max_frames=args.max_frames, duration=args.duration)
            self.fps, self.total = self.live.fps, args.max_frames
        else:
            from yolactpp.video import probe_video

            info = probe_video(source)
            self.fps = info.fps
            limits = [n for n in (info.frames, args.max_frames) if n is not None]
            if args.duration is not None:
                limits.append(max(1, math.ceil(args.duration * float(info.fps))))
            self.total = min(limits) if limits else None
        self.positions: list[tuple[int, float]] = []  # (frame number, time) of each frame handed out

    def images(self) -> Any:
        if self.live is not None:
            for item in self.live:
                self.positions.append((item.index, item.time))
                yield item.image
            return
        from yolactpp.video import read_frames

        frames = read_frames(self.source)
        try:
            for index, image in enumerate(frames):
                if self.total is not None and index >= self.total:
                    return
                self.positions.append((index, float(index / self.fps)))
                yield image
        finally:
            frames.close()

    def close(self) -> None:
        if self.live is not None:
            self.live.close()


def run_video(model: Any, source: str, name: str, out: Path, args: argparse.Namespace, options: PredictOptions) -> bool:
    """Predict every frame of a video or live source; returns False when Ctrl-C stopped it."""
    import numpy as np

    from yolactpp.polygons import polygons_to_coco
    from yolactpp.video import VideoWriter

    track: Any = False
    if args.track:
        from yolactpp.tracking import Tracker

        track = Tracker()  # made before a live source opens, so no frame waits for the import
    frames = Frames(source, args)
    if args.track:
        track = Tracker(frame_rate=float(frames.fps))
    writer = None
    tables: list[Any] = []
    done = 0
    interrupted = False
    stream = model.iter_predict(frames.images(), batch_size=args.batch_size, options=options, track=track)
    unit_name = Path(source).name if frames.live is None else source
    bar = progress(stream, frames.total, "frame", unit_name, enabled=not args.quiet)
    try:
        with open(out / f"{name}.jsonl", "w") as lines:
            for det in bar:
                index, seconds = frames.positions[done]
                record = det.to_dict()
                record.pop("path")
                if args.save_polygons:
                    for row, outlines in zip(record["detections"], det.polygons()):
                        row["polygons"] = polygons_to_coco(outlines)
                lines.write(json.dumps({"frame": index, "time": round(seconds, 6), **record}) + "\n")
                if args.save_csv:
                    tables.append(detections_table(det, frame=index, time=seconds))
                if not args.no_plot:
                    image = np.asarray(det.plot())
                    if writer is None:
                        writer = VideoWriter(out / f"{name}.mp4", frames.fps, image.shape[1], image.shape[0])
                    writer.write(image, seconds if frames.live is not None else None)
                done += 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        frames.close()
        if writer is not None:
            writer.close()
    if tables:
        write_csv(tables, out / f"{name}.csv")
    if not args.quiet:
        line = f"{source}: {done} frame{'s' if done != 1 else ''}"
        if frames.live is not None:
            line += f", {frames.live.dropped} dropped (inference slower than the stream)"
            if frames.live.error:
                line += f"; {frames.live.error}"
        print(line + ("; stopped by Ctrl-C, outputs closed" if interrupted else ""))
    return not interrupted


def split_live(specs: list[str]) -> tuple[list[str], list[str]]:
    from yolactpp.live import is_live_source

    live = [s for s in specs if is_live_source(s)]
    return live, [s for s in specs if s not in live]


def live_name(source: str) -> str:
    text = source.strip()
    if text.isdigit():
        return f"webcam{text}"
    stem = Path(text.split("?", 1)[0].rstrip("/")).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_.") or "stream"
