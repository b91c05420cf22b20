"""Torch-free stylization with an exported ONNX generator (onnxruntime + numpy + Pillow).

The ONNX file is the only input: its ``metadata_props["cyclegan"]`` card (see
:mod:`serve.model_metadata`) says how to normalise pixels, which size multiple the network needs and
the recommended maximum side. The pipeline per image: RGB -> resize to the max side (LANCZOS, aspect
kept, never upscaled) -> normalise -> pad to the size multiple (reflect; edge for tiny images) ->
run -> crop back -> denormalise to uint8.

A :class:`Stylizer` holds no mutable state after construction, so one instance may be shared by
several threads (onnxruntime's ``run`` is thread-safe).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from serve.imageio import fit_size, to_rgb
from serve.model_metadata import GeneratorCard, MetadataError

__all__ = ["ModelLoadError", "ModelMetadataError", "Stylizer", "available_cpus", "fit_size", "session_options"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class ModelLoadError(RuntimeError):
    """The model file is missing, not ONNX, or not a generator exported by this toolkit."""


class ModelMetadataError(ModelLoadError, MetadataError):
    """The ONNX model lacks, or has unreadable, cyclegan metadata (both error types catch it)."""


def available_cpus() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Thread settings for a small CPU: ``threads`` intra-op threads, one inter-op, full graph optimisation."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads if threads is not None else available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads must not spin: the bot runs several sessions side by side on shared cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; failed runs raise anyway
    return options


def padded_size(size: int, multiple: int, minimum: int = 1) -> int:
    """The smallest multiple of ``multiple`` that is >= max(size, minimum)."""
    size = max(size, minimum)
    return -(-size // multiple) * multiple


def _pad_axis(x: np.ndarray, axis: int, total: int) -> np.ndarray:
    """Pad ``total`` pixels along ``axis`` (split before/after): reflect where possible, else edge."""
    if total <= 0:
        return x
    before, after = total // 2, total - total // 2
    widths = [(0, 0)] * x.ndim
    widths[axis] = (before, after)
    mode = "reflect" if max(before, after) < x.shape[axis] else "edge"
    return np.pad(x, widths, mode=mode)


class Stylizer:
    """One ONNX generator direction, ready to stylize PIL images.

    ``threads``: intra-op threads (default: the CPUs available to this process). ``max_side``: the
    default longest output side (default: the card's ``max_side``; None/0 keeps the size).
    ``providers``: onnxruntime execution providers (default CPU).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        threads: int | None = None,
        max_side: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        self.path = Path(model_path)
        if not self.path.is_file():
            what = "is a folder, not a model file" if self.path.is_dir() else "does not exist"
            raise ModelLoadError(f"model {self.path} {what}: pass an .onnx file written by `cyclegan export`")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=session_options(threads),
                providers=list(providers) if providers else ["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ModelLoadError(f"{self.path} is not a loadable ONNX model: {exc}") from None
        self._dtype = self._check_signature()
        try:
            self.card: GeneratorCard = GeneratorCard.from_props(
                self.session.get_modelmeta().custom_metadata_map, where=str(self.path)
            )
        except MetadataError as exc:
            raise ModelMetadataError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise ModelMetadataError(f"{self.path}: unreadable cyclegan metadata: {exc}") from None
        if self.card.size_multiple < 1:
            raise ModelMetadataError(f"{self.path}: size_multiple must be >= 1, got {self.card.size_multiple}")
        self.max_side = max_side if max_side is not None else self.card.max_side
        self.name = self.path.stem
        mean = np.asarray(self.card.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.card.std, dtype=np.float32).reshape(1, -1, 1, 1)
        self._in_scale, self._in_offset = 1.0 / (255.0 * std), -mean / std
        self._out_scale, self._out_offset = 255.0 * std, 255.0 * mean

    def _check_signature(self) -> type:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        names = ", ".join(f"{i.name}{i.shape}" for i in inputs)
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or len(inputs[0].shape) != 4:
            raise ModelLoadError(
                f"{self.path} is not a cyclegan generator: expected one 4-D input named {INPUT_NAME!r} "
                f"(NCHW), found {names or 'none'}; export it with `cyclegan export`"
            )
        if not outputs or outputs[0].name != OUTPUT_NAME:
            found = ", ".join(o.name for o in outputs) or "none"
            raise ModelLoadError(f"{self.path}: expected an output named {OUTPUT_NAME!r}, found {found}")
        channels = inputs[0].shape[1]
        if isinstance(channels, int) and channels not in (1, 3):
            raise ModelLoadError(f"{self.path}: the input has {channels} channels; only 1 or 3 are supported")
        dtype = _NUMPY_TYPES.get(inputs[0].type)
        if dtype is None:
            raise ModelLoadError(f"{self.path}: input type {inputs[0].type} is not supported (float32 or float16)")
        return dtype

    @property
    def title(self) -> str:
        """``name (source -> target)``, e.g. ``cartoon (photo -> cartoon)``."""
        return f"{self.name} ({self.card.title})"

    def __repr__(self) -> str:
        return f"Stylizer({str(self.path)!r}, {self.card.title}, max_side={self.max_side})"

    # -- arrays ---------------------------------------------------------------------------------------

    def run_array(self, batch: np.ndarray) -> np.ndarray:
        """Stylize uint8 images ``[N, H, W, C]`` (any H, W; no resizing) -> uint8 ``[N, H, W, C_out]``."""
        if batch.ndim != 4 or batch.dtype != np.uint8:
            raise ValueError(f"run_array expects uint8 [N, H, W, C], got {batch.dtype} {batch.shape}")
        n, h, w, _ = batch.shape
        x = batch.transpose(0, 3, 1, 2).astype(np.float32)
        in_c = x.shape[1]
        x *= self._in_scale[:, :in_c]  # (x / 255 - mean) / std, in place: two passes instead of four
        x += self._in_offset[:, :in_c]
        m = self.card.size_multiple
        minimum = self._min_side()
        ph, pw = padded_size(h, m, minimum) - h, padded_size(w, m, minimum) - w
        x = _pad_axis(_pad_axis(x, 2, ph), 3, pw)
        y = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=self._dtype)})[0]
        top, left = ph // 2, pw // 2
        y = np.array(y[:, :, top : top + h, left : left + w], dtype=np.float32)  # a fresh copy, modified in place
        out_c = y.shape[1]
        y *= self._out_scale[:, :out_c]  # (y * std + mean) * 255
        y += self._out_offset[:, :out_c]
        np.rint(y, out=y)
        np.clip(y, 0, 255, out=y)
        return y.astype(np.uint8).transpose(0, 2, 3, 1)

    def _min_side(self) -> int:
        """Smallest side the network runs on: ResNet generators reflect-pad a 1/4-scale map by 1 px."""
        if "min_side" in self.card.extra:
            return int(self.card.extra["min_side"])
        return 2 * self.card.size_multiple if self.card.generator.startswith("resnet") else self.card.size_multiple

    # -- PIL images -----------------------------------------------------------------------------------

    def prepare(self, image: Image.Image, *, max_side: int | None = None) -> Image.Image:
        """The model-mode image at its output size (converted and resized, not yet stylized)."""
        image = to_rgb(image)
        if self.card.input_nc == 1:
            image = image.convert("L")
        side = max_side if max_side is not None else self.max_side
        size = fit_size(image.width, image.height, side)
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image

    def stylize(self, image: Image.Image, *, max_side: int | None = None) -> Image.Image:
        """Stylize one image; ``max_side`` overrides the default longest side (0 keeps the size)."""
        return self.stylize_batch([image], max_side=max_side)[0]

    def stylize_batch(
        self, images: Iterable[Image.Image], *, max_side: int | None = None, batch_size: int = 4
    ) -> list[Image.Image]:
        """Stylize several images, running same-size images together in batches of ``batch_size``."""
        prepared = [self.prepare(image, max_side=max_side) for image in images]
        results: list[Image.Image | None] = [None] * len(prepared)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(prepared):
            by_size.setdefault(image.size, []).append(index)
        for indices in by_size.values():
            for start in range(0, len(indices), max(1, batch_size)):
                chunk = indices[start : start + max(1, batch_size)]
                arrays = [np.asarray(prepared[i]) for i in chunk]
                batch = np.stack([a if a.ndim == 3 else a[:, :, None] for a in arrays])
                for i, out in zip(chunk, self.run_array(batch)):
                    results[i] = Image.fromarray(out[:, :, 0] if out.shape[2] == 1 else out)
        return [r for r in results if r is not None]
