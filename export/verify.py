"""Check an exported model against its source: onnxruntime vs PyTorch parity, PSNR and speed."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from cyclegan.contract.errors import EXIT_FAILED, ToolkitError
from cyclegan.contract.runtime import INPUT_NAME, OUTPUT_NAME, session_options
from cyclegan.contract.sizes import round_up

# (height, width) before rounding up to the generator's size multiple: square, portrait, landscape.
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (96, 128), (132, 100))
FP32_TOLERANCE = 1e-4


class ParityError(ToolkitError):
    """onnxruntime and PyTorch disagree beyond the tolerance."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class ParityCase:
    batch: int
    height: int
    width: int
    max_abs_diff: float


def parity_shapes(size_multiple: int, sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES) -> list[tuple[int, int, int]]:
    """(batch, H, W) cases: every size rounded up to the multiple, one of them with batch 2.

    Always includes a non-square case, also when rounding collapses the sizes (UNet-256).
    """
    shapes: list[tuple[int, int]] = []
    for h, w in sizes:
        shape = (round_up(h, size_multiple), round_up(w, size_multiple))
        if shape not in shapes:
            shapes.append(shape)
    if all(h == w for h, w in shapes):
        shapes.append((size_multiple, 2 * size_multiple))
    cases = [(1, h, w) for h, w in shapes]
    cases.append((2, *shapes[-1]))
    return cases


def make_session(path: str | os.PathLike[str], threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session with the serving settings (:func:`cyclegan.contract.runtime.session_options`)."""
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def make_session_from(model: onnx.ModelProto, threads: int | None = None) -> ort.InferenceSession:
    """:func:`make_session` for an in-memory model (checked before it is written anywhere)."""
    return ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])


def run_session(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


def random_input(batch: int, channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish test image batch in [-1, 1] (noise plus a gradient, so norm layers see structure)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    base = 0.5 * np.stack([xx, yy, xx * yy][:channels] + [xx] * max(0, channels - 3))
    noise = rng.uniform(-0.5, 0.5, (batch, channels, height, width))
    return np.clip(base[None] + noise, -1, 1).astype(np.float32)


def check_parity(
    module: nn.Module,
    session: ort.InferenceSession,
    *,
    input_nc: int,
    size_multiple: int,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    tolerance: float = FP32_TOLERANCE,
    where: str = "model",
) -> list[ParityCase]:
    """Compare onnxruntime with PyTorch at several sizes; raise ParityError past ``tolerance``."""
    module = module.eval()
    cases: list[ParityCase] = []
    for index, (batch, h, w) in enumerate(parity_shapes(size_multiple, sizes)):
        x = random_input(batch, input_nc, h, w, seed=index)
        with torch.inference_mode():
            expected = module(torch.from_numpy(x)).numpy()
        actual = run_session(session, x)
        if actual.shape != expected.shape:
            raise ParityError(
                f"{where}: output shape {actual.shape} from onnxruntime, {expected.shape} from PyTorch "
                f"for input {x.shape}"
            )
        diff = float(np.max(np.abs(actual - expected)))
        cases.append(ParityCase(batch, h, w, diff))
        if not diff < tolerance:  # also catches NaN
            raise ParityError(
                f"{where}: onnxruntime differs from PyTorch by {diff:.3g} (max abs) at batch {batch}, "
                f"{h}x{w}; the tolerance is {tolerance:g}. The export is wrong for this architecture: "
                "try the other exporter (--exporter torchscript/dynamo) or another --opset"
            )
    return cases


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 2.0) -> float:
    """PSNR in dB of ``test`` against ``reference`` (outputs live in [-1, 1], so the range is 2)."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * np.log10(data_range**2 / mse)


def psnr_over(references: Sequence[np.ndarray], tests: Sequence[np.ndarray]) -> float:
    """:func:`psnr` over several outputs of different sizes taken together."""
    return psnr(np.concatenate([r.ravel() for r in references]), np.concatenate([t.ravel() for t in tests]))


def time_session(session: ort.InferenceSession, x: np.ndarray, repeats: int = 3, warmup: int = 1) -> float:
    """Best-of-``repeats`` latency in milliseconds per call (min: least disturbed by other load)."""
    for _ in range(warmup):
        run_session(session, x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run_session(session, x)
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def time_sessions(
    sessions: Sequence[ort.InferenceSession], x: np.ndarray, repeats: int = 3, warmup: int = 1
) -> list[float]:
    """:func:`time_session` for several sessions, interleaved round-robin so background load hits all alike."""
    for session in sessions:
        for _ in range(warmup):
            run_session(session, x)
    best = [float("inf")] * len(sessions)
    for _ in range(repeats):
        for i, session in enumerate(sessions):
            start = time.perf_counter()
            run_session(session, x)
            best[i] = min(best[i], time.perf_counter() - start)
    return [b * 1000.0 for b in best]
