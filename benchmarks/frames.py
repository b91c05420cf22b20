"""Frame sampling speed: decode every frame vs the sparse (seeking) sampler.

Encodes a 720p H.264 clip itself (default 30 s at 30 fps, GOP 2 s, moving content so the
encoder cannot skip work), then samples one frame every 2 s: (a) decoding every frame in
order, (b) seeking to the keyframe before each target (the default), (c) decoding keyframes
only (``--keyframes-only``). Prints the decoded-frame counts, wall times, effective frames/s
and the speed ratio from one run.

    python -m benchmarks.frames [--seconds 30] [--fps 30] [--every 2] [--keep clip.mp4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from media import write_h264  # noqa: E402  (tests/media.py: the shared PyAV encoders)

from cyclegan.frames.video import Sampling, VideoReader  # noqa: E402


def moving_frames(seconds: int, fps: int, height: int = 720, width: int = 1280):
    """A textured background panning sideways plus a new scene every 3 s (cheap to generate)."""
    rng = np.random.default_rng(0)
    for i in range(seconds * fps):
        if i % (3 * fps) == 0:
            small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 64, 3), dtype=np.uint8)
            scene = np.repeat(np.repeat(small, 16, 0), 16, 1)
        shift = (i % (3 * fps)) * 4
        yield np.ascontiguousarray(scene[:height, shift : shift + width])


def run(path: Path, sampling: Sampling, seek: bool, keyframes_only: bool = False) -> tuple[int, int, float]:
    start = time.perf_counter()
    with VideoReader(path) as reader:
        samples = sum(1 for _ in reader.sample(sampling, seek=seek, keyframes_only=keyframes_only))
        decoded = reader.decoded
    return samples, decoded, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--every", type=float, default=2.0, help="sampling interval in seconds")
    parser.add_argument("--keep", type=Path, default=None, help="write the clip here instead of a temp dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench_720p.mp4"
        t0 = time.perf_counter()
        write_h264(path, moving_frames(args.seconds, args.fps), args.fps, gop=2 * args.fps, crf=23, preset="ultrafast")
        print(
            f"clip: 1280x720 H.264, {args.seconds} s at {args.fps} fps, GOP {2 * args.fps} frames, "
            f"{path.stat().st_size / 1e6:.1f} MB, encoded in {time.perf_counter() - t0:.1f} s"
        )
        sampling = Sampling(every_seconds=args.every)
        results = {}
        modes = (("decode every frame", False, False), ("sparse (seek)", True, False), ("keyframes only", False, True))
        for label, seek, keyframes_only in modes:
            samples, decoded, wall = run(path, sampling, seek, keyframes_only)
            results[label] = wall
            print(
                f"{label:>20}: {samples} samples, {decoded} frames decoded, {wall:.2f} s wall, "
                f"{samples / wall:.1f} samples/s, {decoded / wall:.0f} decoded frames/s, "
                f"{args.seconds * args.fps / wall:.0f} video frames/s"
            )
        ratio = results["decode every frame"] / results["sparse (seek)"]
        print(
            f"sparse sampler is {ratio:.1f}x faster than decoding every frame (1 frame / {args.every:g} s); "
            f"keyframes-only {results['decode every frame'] / results['keyframes only']:.1f}x"
        )


if __name__ == "__main__":
    main()
