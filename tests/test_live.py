"""Videos and live sources: rotation metadata, a local HLS stream served in-process, frame
dropping, bounds, tracking, tables and polygons from the CLI, and a clean stop on Ctrl-C.

All network traffic stays on 127.0.0.1: the stream is an HTTP server in this process serving an
HLS playlist that PyAV wrote, so no ffmpeg binary is needed.
"""

from __future__ import annotations

import csv
import functools
import json
import threading
from collections.abc import Iterator
from fractions import Fraction
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolactpp.cli import main

av = pytest.importorskip("av")

from yolactpp.live import LiveStream, is_live_source  # noqa: E402
from yolactpp.video import VideoError, probe_video, read_frames  # noqa: E402


def _encode(container, stream, frames: list[np.ndarray]) -> None:
    for i, frame in enumerate(frames):
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = i
        for packet in stream.encode(video_frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _marked_frames(n: int, height: int, width: int, base: np.ndarray | None = None) -> list[np.ndarray]:
    """Frames with a white 8x8 marker in the stored top-left corner."""
    frames = []
    for _ in range(n):
        frame = np.zeros((height, width, 3), np.uint8) if base is None else base.copy()
        frame[:8, :8] = 255
        frames.append(frame)
    return frames


def _rotated_clip(path: Path, frames: list[np.ndarray], degrees: int) -> None:
    """An MP4 whose display matrix says: turn the stored frames ``degrees`` counter-clockwise."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.set_display_rotation(degrees)
        _encode(container, stream, frames)


def test_rotated_video_is_read_upright(tmp_path: Path) -> None:
    clip = tmp_path / "portrait.mp4"
    _rotated_clip(clip, _marked_frames(2, 32, 64), 90)  # stored 64 wide x 32 high
    info = probe_video(clip)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)  # displayed portrait
    frames = list(read_frames(clip))
    assert len(frames) == 2 and frames[0].shape == (64, 32, 3)
    gray = frames[0].mean(axis=2)
    # a quarter turn counter-clockwise takes the stored top-left corner to the bottom-left
    assert gray[-8:, :8].mean() > 200 and gray[:8, :8].mean() < 50


@pytest.fixture(scope="module")
def hls_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 60 s HLS stream (10 fps, frame i filled with value i % 32 * 8) on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("hls")
    options = {"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "vod"}
    with av.open(str(folder / "live.m3u8"), "w", format="hls", options=options) as container:
        stream = container.add_stream("mpeg2video", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        _encode(container, stream, [np.full((48, 64, 3), i % 32 * 8, np.uint8) for i in range(600)])

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
    server.shutdown()
    thread.join(timeout=5)


def test_live_sources_are_recognised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in ("0", "/dev/video2", "rtsp://cam.local/stream", "udp://127.0.0.1:5000", "https://x.org/a/index.m3u8?t=1"):
        assert is_live_source(spec), spec
    for spec in ("clip.mp4", "https://x.org/cat.jpg", "images/", "0.png"):
        assert not is_live_source(spec), spec
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0").write_bytes(b"")
    assert not is_live_source("0")  # an existing file named 0 is that file


def test_a_slow_consumer_gets_the_newest_frames_and_drops_count_the_rest(hls_url: str) -> None:
    import time

    with LiveStream(hls_url, max_frames=6) as stream:
        taken = []
        for item in stream:
            taken.append(item)
            time.sleep(0.3)  # the stream runs at 10 fps: about two of every three frames are skipped
    indices = [item.index for item in taken]
    assert len(taken) == 6 and indices == sorted(indices) and indices[0] == 0
    assert stream.error is None and stream.delivered >= indices[-1] + 1
    assert stream.dropped >= 5 and stream.dropped == indices[-1] + 1 - len(taken)
    for item in taken:  # each frame is the one its index says and its time is index / 10
        assert abs(int(item.image[20, 20, 0]) - item.index % 32 * 8) <= 4
        assert item.time == pytest.approx(item.index / 10)


def test_live_bounds_and_errors(hls_url: str) -> None:
    with LiveStream(hls_url, max_frames=3) as stream:
        assert len(list(stream)) == 3
    with LiveStream(hls_url, duration=0.5) as stream:
        times = [item.time for item in stream]
    assert times and max(times) < 0.5
    with pytest.raises(VideoError, match="cannot open live source"):
        LiveStream(hls_url.replace("live.m3u8", "missing.m3u8"), timeout=5)


def test_predict_live_stream_with_tracking_tables_and_a_frame_bound(hls_url: str, v1_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    args = ["predict", hls_url, "-m", str(v1_checkpoint), "-o", str(out), "--max-frames", "2", "--score-threshold", "0.3"]
    assert main([*args, "--track", "--save-csv"]) == 0
    printed = capsys.readouterr().out
    assert f"{hls_url}: 2 frames, " in printed and "dropped (inference slower than the stream)" in printed
    dropped = int(printed.split(f"{hls_url}: 2 frames, ")[1].split(" dropped")[0])
    lines = [json.loads(line) for line in (out / "live.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["frame"] < lines[1]["frame"]
    assert lines[1]["frame"] + 1 - 2 == dropped  # frame numbers count the source's frames: gaps are drops
    assert lines[1]["time"] == pytest.approx(lines[1]["frame"] / 10)
    assert all("track_id" in d for line in lines for d in line["detections"])
    with av.open(str(out / "live.mp4")) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert len(times) == 2  # placed at their stream times: the video plays at the stream's speed
    assert times[1] - times[0] == pytest.approx(lines[1]["time"] - lines[0]["time"], abs=0.11)
    with open(out / "live.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(line["detections"]) for line in lines)
    assert set(rows[0]) >= {"frame", "time", "class_name", "score", "track_id", "area"}


def test_predict_rotated_video_with_tracks_polygons_and_ctrl_c(landscape_path: Path, v1_checkpoint: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    base = np.asarray(Image.open(landscape_path).convert("RGB").resize((96, 64)))
    clip = tmp_path / "phone.mp4"
    _rotated_clip(clip, _marked_frames(4, 64, 96, base), -90)  # a phone video: turn clockwise to show
    out = tmp_path / "out"
    args = ["predict", str(clip), "-m", str(v1_checkpoint), "-o", str(out), "--score-threshold", "0.3"]
    assert main([*args, "--max-frames", "2", "--track", "--save-polygons"]) == 0
    assert f"{clip}: 2 frames" in capsys.readouterr().out
    with av.open(str(out / "phone.mp4")) as container:
        annotated = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(annotated) == 2 and annotated[0].shape == (96, 64, 3)  # kept upright: portrait
    lines = [json.loads(line) for line in (out / "phone.jsonl").read_text().splitlines()]
    assert [line["image_size"] for line in lines] == [{"height": 96, "width": 64}] * 2
    detections = [d for line in lines for d in line["detections"]]
    assert detections and all("track_id" in d and "polygons" in d for d in detections)

    # Ctrl-C during the second frame: the run stops, says so, and leaves complete, readable files.
    from yolactpp import results

    calls = {"n": 0}
    plot = results.Detections.plot

    def interrupted_plot(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return plot(self, *a, **k)

    monkeypatch.setattr(results.Detections, "plot", interrupted_plot)
    stopped = tmp_path / "stopped"
    assert main(["predict", str(clip), "-m", str(v1_checkpoint), "-o", str(stopped), "--max-frames", "3"]) == 130
    printed = capsys.readouterr().out
    assert "stopped by Ctrl-C" in printed and f"results so far saved to {stopped}" in printed
    with av.open(str(stopped / "phone.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 1
    assert all(json.loads(line) for line in (stopped / "phone.jsonl").read_text().splitlines())
    assert Fraction(probe_video(stopped / "phone.mp4").fps) == 5
