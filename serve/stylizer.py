"""Torch-free stylization with an exported ONNX generator (onnxruntime + numpy + Pillow).

The ONNX file is the only input: its card (:class:`cyclegan.contract.card.GeneratorCard`, in
``metadata_props``) says how to normalise pixels, which sizes the network needs and the recommended maximum
side. The pipeline per image: RGB -> resize to the max side (LANCZOS, aspect kept, never upscaled) -> to the
model's space -> pad to an allowed size (centred; reflect, edge for tiny images) -> run -> crop back -> uint8.

A :class:`Stylizer` holds no mutable state after construction, so one instance may be shared by
several threads (onnxruntime's ``run`` is thread-safe).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from cyclegan.contract import pixels, sizes
from cyclegan.contract.card import CardError, GeneratorCard
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.images import prepare_image
from cyclegan.contract.runtime import INPUT_NAME, OUTPUT_NAME, session_options

__all__ = ["ModelLoadError", "Stylizer"]

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class ModelLoadError(ToolkitError):
    """The model file is missing, not ONNX, or not a generator exported by this toolkit."""


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
        except CardError as exc:
            raise ModelLoadError(str(exc)) from None
        self.max_side = max_side if max_side is not None else self.card.max_side
        self.name = self.path.stem

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
        card = self.card
        x = pixels.to_model(batch, card.mean, card.std)
        _, _, h, w = x.shape
        x, (top, left) = sizes.pad_centred(x, card.size_multiple, card.min_side)
        y = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=self._dtype)})[0]
        if y.shape[0] != x.shape[0] or y.shape[2:] != x.shape[2:]:
            raise ModelLoadError(
                f"{self.path}: the model returned {tuple(y.shape)} for an input of {tuple(x.shape)}; "
                "a generator must keep the image size (re-export it with `cyclegan export`)"
            )
        return pixels.from_model(y[:, :, top : top + h, left : left + w], card.mean, card.std)

    # -- PIL images -----------------------------------------------------------------------------------

    def prepare(self, image: Image.Image, *, max_side: int | None = None) -> Image.Image:
        """The model-mode image at its output size (converted and resized, not yet stylized)."""
        return prepare_image(image, self.card.input_nc, max_side if max_side is not None else self.max_side)

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
