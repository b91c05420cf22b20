"""Torch-free stylization with an exported ONNX generator (onnxruntime + numpy + Pillow).

The ONNX file is the only input: its card (:class:`cyclegan.contract.card.GeneratorCard`, in
``metadata_props``) says how to normalise pixels, which sizes the network needs and the recommended maximum
side. The pipeline per image: RGB -> resize to the max side (LANCZOS, aspect kept, never upscaled) -> to the
model's space -> pad to an allowed size (centred; reflect, edge for tiny images) -> run -> crop back -> uint8.

Large pictures are tiled (:mod:`serve.tiles`): above the tile budget (``tile`` squared pixels, 1024 px tiles by
default) an instance-norm ResNet runs window by window with the whole picture's normalisation statistics
(the export's companion graphs), so memory is bounded by the tile and no seams show; BatchNorm and norm-free
ResNets tile with the plain model. Models that cannot tile (U-Nets, exports without the companions) are
downscaled to the budget instead, with a note on stderr.

A :class:`Stylizer` holds no mutable state after construction (the companions load once, under a lock), so
one instance may be shared by several threads (onnxruntime's ``run`` is thread-safe).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from cyclegan.contract import pixels, sizes
from cyclegan.contract.card import CardError, GeneratorCard
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.images import prepare_image
from cyclegan.contract.runtime import INPUT_NAME, OUTPUT_NAME, release_freed_memory, session_options
from cyclegan.contract.tiles import DEFAULT_STATS_SIDE, DEFAULT_TILE, TileError, geometry, needs_stats

__all__ = ["ModelLoadError", "Stylizer"]

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class ModelLoadError(ToolkitError):
    """The model file is missing, not ONNX, or not a generator exported by this toolkit."""


class Stylizer:
    """One ONNX generator direction, ready to stylize PIL images.

    ``threads``: intra-op threads (default: the CPUs available to this process). ``max_side``: the
    default longest output side (default: the card's ``max_side``; None/0 keeps the size).
    ``providers``: onnxruntime execution providers (default CPU). ``tile``: None tiles pictures of more than
    1024x1024 pixels in windows of at most 960x960 pixels; N tiles pictures with a side over N in windows of
    at most N*N pixels; 0 never tiles.
    ``stats_side``: the longest side of the downscaled copy the picture's statistics come from.
    ``note``: where one-line notes go (a fallback from tiles to downscaling); default stderr, once each.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        threads: int | None = None,
        max_side: int | None = None,
        providers: Sequence[str] | None = None,
        tile: int | None = None,
        stats_side: int = DEFAULT_STATS_SIDE,
        note: Callable[[str], None] | None = None,
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
        release_freed_memory()  # the parse buffers loading freed
        self._dtype = self._check_signature()
        try:
            self.card: GeneratorCard = GeneratorCard.from_props(
                self.session.get_modelmeta().custom_metadata_map, where=str(self.path)
            )
        except CardError as exc:
            raise ModelLoadError(str(exc)) from None
        self.max_side = max_side if max_side is not None else self.card.max_side
        self.name = self.path.stem
        self._threads, self._providers = threads, providers
        if tile is not None and tile < 0:
            raise ValueError(f"tile must be >= 0, got {tile}")
        self.tile = tile  # None: automatic (budget DEFAULT_TILE ** 2 pixels), 0: never
        self.geometry = geometry(tile, self.card.size_multiple) if tile != 0 else None
        if stats_side < 16:
            raise ValueError(f"stats_side must be >= 16, got {stats_side}")
        self.stats_side = stats_side
        self._note_sink = note
        self._noted: set[str] = set()
        self._companions = None
        self._lock = threading.Lock()

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

    # -- tiles ----------------------------------------------------------------------------------------

    def _note(self, message: str) -> None:
        if message in self._noted:
            return
        self._noted.add(message)
        if self._note_sink is not None:
            self._note_sink(message)
        else:
            print(f"note: {message}", file=sys.stderr)

    def _session(self, path: Path, *, arena: bool = True) -> ort.InferenceSession:
        """A companion's session; ``arena=False``: without onnxruntime's memory arena (memory is given back after
        each run instead of held at the run's peak)."""
        options = session_options(self._threads)
        if not arena:
            options.enable_cpu_mem_arena = False
        try:
            return ort.InferenceSession(
                str(path),
                sess_options=options,
                providers=list(self._providers) if self._providers else ["CPUExecutionProvider"],
            )
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a loadable ONNX model: {exc}") from None

    @property
    def companions(self):  # noqa: ANN201 - serve.tiles.Companions, imported lazily
        """The seam-free tiles companions (loaded on first use; ``.missing`` says why there are none)."""
        if self._companions is None:
            with self._lock:
                if self._companions is None:
                    from serve.tiles import load_companions

                    self._companions = load_companions(self.path, self.card, self._session)
        return self._companions

    @property
    def can_tile(self) -> bool:
        """Can large pictures run window by window without seams?"""
        return self.geometry is not None and not self.companions.missing

    def needs_tiles(self, height: int, width: int) -> bool:
        """Is a picture of this size above the tile budget?"""
        if self.geometry is None:
            return False
        if self.tile is None:
            return height * width > DEFAULT_TILE * DEFAULT_TILE
        return max(height, width) > self.geometry.tile

    def _budget_side(self, width: int, height: int) -> int:
        """The longest side that brings a picture within the tile budget (for models that cannot tile)."""
        tile = self.geometry.tile if self.geometry is not None else DEFAULT_TILE
        if self.tile is not None:
            return tile
        scale = (tile * tile / (width * height)) ** 0.5
        return max(1, int(max(width, height) * scale))

    def _tiler(self, with_stats: bool):  # noqa: ANN202 - serve.tiles.Tiler
        from serve.tiles import Tiler

        assert self.geometry is not None
        session = self.companions.tiles if with_stats else self.session
        return Tiler(self.card, session, self.geometry, with_stats, self._dtype if not with_stats else np.float32)

    def picture_stats(self, image: np.ndarray, stats_side: int | None = None) -> np.ndarray:
        """The normalisation statistics of a whole uint8 [H, W, C] picture (InstanceNorm models with companions)."""
        from serve.tiles import picture_stats

        if self.companions.stats is None:
            raise TileError(f"{self.name} has no statistics companion: {self.companions.missing or 'not needed'}")
        return picture_stats(image, self.card, self.companions.stats, stats_side or self.stats_side)

    def run_tiled(self, image: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """Stylize one uint8 [H, W, C] picture window by window (with ``stats``, or the picture's own)."""
        if not self.can_tile:
            raise TileError(f"{self.name} cannot be tiled: {self.companions.missing or 'tiles are switched off'}")
        with_stats = needs_stats(self.card.norm)
        if with_stats and stats is None:
            stats = self.picture_stats(image)
        return self._tiler(with_stats).run(image, stats if with_stats else None)

    def run_with_stats(self, image: np.ndarray, stats: np.ndarray) -> np.ndarray:
        """Stylize one uint8 [H, W, C] picture normalised with the given statistics (one window when it fits)."""
        from serve.tiles import Tiler

        if self.companions.tiles is None:
            raise TileError(
                f"{self.name} takes no statistics: {self.companions.missing or 'not an InstanceNorm model'}"
            )
        geo = self.geometry
        if geo is None or not self.needs_tiles(*image.shape[:2]):
            side = max(image.shape[:2]) + 2 * self.card.size_multiple  # one window holds the padded picture
            geo = geometry(max(side, DEFAULT_TILE), self.card.size_multiple)
        return Tiler(self.card, self.companions.tiles, geo, True).run(image, stats)

    # -- arrays ---------------------------------------------------------------------------------------

    def run_array(self, batch: np.ndarray) -> np.ndarray:
        """Stylize uint8 images ``[N, H, W, C]`` (any H, W; no resizing) -> uint8 ``[N, H, W, C_out]``.

        Pictures above the tile budget run window by window where the model can (see the class docs).
        """
        if self.needs_tiles(batch.shape[1], batch.shape[2]) and self.can_tile:
            return np.stack([self.run_tiled(image) for image in batch])
        return self._run_whole(batch)

    def _run_whole(self, batch: np.ndarray) -> np.ndarray:
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
        """The model-mode image at its output size (converted and resized, not yet stylized).

        A picture above the tile budget that this model cannot tile is downscaled to the budget (with a note).
        """
        image = prepare_image(image, self.card.input_nc, max_side if max_side is not None else self.max_side)
        if self.needs_tiles(image.height, image.width) and not self.can_tile:
            side = self._budget_side(image.width, image.height)
            budget = f"{self.geometry.tile}x{self.geometry.tile} pixels" if self.geometry else "the budget"
            self._note(f"{self.companions.missing}: pictures over the tile budget ({budget}) are downscaled to it")
            image = prepare_image(image, self.card.input_nc, side)
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
