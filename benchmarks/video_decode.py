"""Video decoding throughput (frames/s) of each installed `load_video` backend on a generated H.264 mp4."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from valley3._optional import is_available
from valley3.data.media.video import _MODULES, BACKENDS, _probe_rotation, load_video


def make_video(path: Path, width: int, height: int, seconds: float, fps: int) -> Path:
    """Write a synthetic clip: a moving gradient with noise, H.264 (yuv420p, 2 s GOPs, B-frames).

    Args:
        path: the mp4 to write.
        width: frame width in pixels.
        height: frame height in pixels.
        seconds: clip length.
        fps: frame rate.
    """
    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width)[None, :]
    y = np.linspace(0, 255, height)[:, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(2 * fps), "crf": "23"}
        for i in range(int(seconds * fps)):
            shift = 4 * i
            r = (x + shift) % 256 + 0 * y
            g = (y + shift) % 256 + 0 * x
            b = rng.integers(0, 64, (height, width))
            frame = np.stack([r, g, b], axis=-1).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def best_time(fn, repeats: int) -> float:
    """The fastest of `repeats` calls, in seconds (the least disturbed by the rest of the machine).

    Args:
        fn: what to time.
        repeats: how many calls.
    """
    fn()  # warm-up: imports, file cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> list[dict]:
    """Time each installed backend on uniform and dense sampling and print one table.

    Args:
        argv: command-line arguments (see --help).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--frames", type=int, default=16, help="frames for the uniform-sampling row")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    backends = [b for b in BACKENDS if is_available(_MODULES[b])]
    total = int(args.seconds * args.fps)
    modes = {
        f"uniform {args.frames}": {"num_frames": args.frames},
        "2 fps": {"fps": 2.0, "max_frames": total},
        f"all {total}": {"fps": float(args.fps), "max_frames": total},
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = make_video(Path(tmp) / "bench.mp4", args.width, args.height, args.seconds, args.fps)
        probe = best_time(lambda: _probe_rotation(path), args.repeats)
        for mode, kwargs in modes.items():
            for backend in backends:
                n = load_video(path, backend=backend, **kwargs).num_frames
                seconds = best_time(lambda b=backend, k=kwargs: load_video(path, backend=b, **k), args.repeats)
                rows.append(
                    {"backend": backend, "sampling": mode, "frames": n, "ms": 1e3 * seconds, "fps": n / seconds}
                )
    print(f"{args.width}x{args.height} H.264, {args.seconds:g} s at {args.fps} fps; best of {args.repeats}")
    print(f"rotation probe (PyAV, first frame), included in every row: {1e3 * probe:.1f} ms\n")
    print("| backend | sampling | frames | ms | frames/s | vs fastest |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        fastest = max(r["fps"] for r in rows if r["sampling"] == row["sampling"])
        print(
            f"| {row['backend']} | {row['sampling']} | {row['frames']} | {row['ms']:.1f} | {row['fps']:.0f} "
            f"| {row['fps'] / fastest:.2f}x |"
        )
    return rows


if __name__ == "__main__":
    main()
