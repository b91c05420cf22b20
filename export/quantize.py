"""Reduced-precision variants of a verified fp32 ONNX generator: fp16 and int8 (static, QDQ).

* fp16: weights and activations in float16 via onnxruntime's own converter
  (``onnxruntime.transformers.float16``; onnxconverter-common is not a dependency). The graph keeps
  float32 ``input``/``output`` (the serving contract) and keeps normalisation layers in float32.
* int8: ``onnxruntime.quantization.quantize_static`` in QDQ format, per-channel weights, activations
  calibrated on real images from a folder, prepared exactly as serving prepares them (the same
  :mod:`cyclegan.contract` functions: open, fit to a side, to the model's space, pad to an allowed size).
  Only Conv/ConvTranspose are quantized; InstanceNorm/BatchNorm, Tanh and the residual adds stay float.
  (``quantize_dynamic`` would only touch MatMul/Gemm: useless for conv nets.)
  :data:`INT8_RECIPES` is a ladder, fastest first, each keeping more convolutions in float
  (``nodes_to_exclude``): the export takes the first recipe whose PSNR against fp32 on held-out images
  reaches the floor (:func:`choose_int8`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from cyclegan.contract import pixels, sizes
from cyclegan.contract.card import GeneratorCard
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.images import IMAGE_EXTENSIONS, ImageInputError, list_images, open_image, prepare_image
from cyclegan.contract.runtime import INPUT_NAME

CALIBRATION_SIDE = 256  # longest side of the calibration images (serving's preparation at this size)
NORM_OPS = ("InstanceNormalization", "BatchNormalization", "LayerNormalization", "GroupNormalization")
INT8_OPS = ["Conv", "ConvTranspose"]


@dataclass(frozen=True)
class Int8Recipe:
    """Which convolutions stay float (by their role in the graph) and how activations are calibrated."""

    name: str
    keep_float: tuple[str, ...] = ()  # roles: "first", "last", "decoder" (see conv_roles), "encoder"
    calibrate: str = "minmax"  # onnxruntime CalibrationMethod name: minmax or percentile

    def excluded(self, model: onnx.ModelProto) -> list[str]:
        """Names of the Conv/ConvTranspose nodes this recipe keeps in float, in graph order."""
        roles = conv_roles(model)
        return [name for name, role in roles.items() if role & set(self.keep_float)]


# Fastest first. Every recipe keeps normalisation, Tanh, Add, Relu and Pad in float (only convolutions are
# quantized); the later ones also keep the convolutions that see the picture itself in float.
INT8_RECIPES: tuple[Int8Recipe, ...] = (
    Int8Recipe("all-convs"),
    Int8Recipe("float-ends", ("first", "last")),
    Int8Recipe("float-ends-percentile", ("first", "last"), "percentile"),
    Int8Recipe("float-ends-decoder", ("first", "last", "decoder")),
    Int8Recipe("float-ends-decoder-encoder", ("first", "last", "decoder", "encoder")),
)
RECIPE_NAMES = tuple(r.name for r in INT8_RECIPES)


def conv_roles(model: onnx.ModelProto) -> dict[str, set[str]]:
    """Every Conv/ConvTranspose node name -> its roles: ``first`` (the first conv, on the picture), ``last``
    (the one producing the output), ``decoder`` (after the last residual Add, or any ConvTranspose: the
    upsampling path), ``encoder`` (before the first residual Add, outside the residual blocks)."""
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type in INT8_OPS]
    adds = [i for i, n in enumerate(nodes) if n.op_type == "Add"]
    roles: dict[str, set[str]] = {nodes[i].name: set() for i in convs}
    if not convs:
        return roles
    roles[nodes[convs[0]].name].add("first")
    roles[nodes[convs[-1]].name].add("last")
    first_add, last_add = (adds[0], adds[-1]) if adds else (len(nodes), -1)
    block_convs = 2  # a ResNet block: two convolutions before its Add
    for i in convs:
        if nodes[i].op_type == "ConvTranspose" or i > last_add:
            roles[nodes[i].name].add("decoder")
    before = [i for i in convs if i < first_add]
    for i in before[: max(0, len(before) - block_convs)] if adds else []:
        roles[nodes[i].name].add("encoder")
    return roles


def cpu_has_vnni() -> bool:
    """AVX512-VNNI or AVX-VNNI on this CPU (Linux /proc/cpuinfo; False where unknown)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_vnni", "avx_vnni"))


class CalibrationError(ToolkitError, ValueError):
    """No usable calibration images; the message says what to pass."""


def list_calibration_images(folder: str | os.PathLike[str] | None, limit: int | None) -> list[Path]:
    """Up to ``limit`` (None: all) image files under ``folder`` (recursive, sorted) or a CalibrationError."""
    if folder is None:
        raise CalibrationError(
            "--precision int8 needs calibration images: pass --calibration-dir DIR with a few dozen "
            "images of the source domain (e.g. the run's dataset trainA/ for A2B)"
        )
    root = Path(folder)
    if not root.is_dir():
        raise CalibrationError(f"calibration folder not found: {root}")
    files = list_images(root)
    if not files:
        raise CalibrationError(
            f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under calibration folder {root}"
        )
    return files[:limit]


def split_held_out(files: Sequence[Path], calibration_count: int, held_out: int) -> tuple[list[Path], list[Path]]:
    """(calibration images, held-out images): ``held_out`` images spread evenly over ``files`` are kept out of
    calibration to measure PSNR on pictures the ranges were not fitted to; up to ``calibration_count`` of the
    rest calibrate. With fewer than two images, the one image does both."""
    files = list(files)
    if len(files) < 2:
        return files[:calibration_count], files
    count = max(1, min(held_out, len(files) // 4))
    picks = {round(i * (len(files) - 1) / max(1, count - 1)) for i in range(count)} if count > 1 else {len(files) // 2}
    rest = [f for i, f in enumerate(files) if i not in picks]
    return rest[:calibration_count], [files[i] for i in sorted(picks)]


def prepare(path: Path, card: GeneratorCard, max_side: int = CALIBRATION_SIDE) -> np.ndarray:
    """One image as the network sees it in serving: ``[1, C, H, W]`` float32, padded to an allowed size."""
    try:
        image = prepare_image(open_image(path), card.input_nc, max_side)
    except ImageInputError as exc:
        raise CalibrationError(f"calibration image {path}: {exc}") from None
    array = np.asarray(image)
    x = pixels.to_model((array if array.ndim == 3 else array[..., None])[None], card.mean, card.std)
    return sizes.pad_centred(x, card.size_multiple, card.min_side)[0]


def load_calibration_inputs(files: Sequence[Path], card: GeneratorCard) -> list[np.ndarray]:
    return [prepare(path, card) for path in files]


def to_fp16(fp32_model: onnx.ModelProto) -> onnx.ModelProto:
    """float16 weights/compute with float32 I/O; normalisation layers stay float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(fp32_model, keep_io_types=True, op_block_list=list(NORM_OPS))
    _dedupe_nodes(model.graph)  # with a block list it can emit the same Cast twice (same output name)
    _toposort(model.graph)  # and it appends its input Casts at the end of the node list
    return model


def _dedupe_nodes(graph: onnx.GraphProto) -> None:
    """Drop exact duplicate nodes (same op, inputs, attributes and outputs); keep the first."""
    seen: dict[tuple[str, ...], bytes] = {}
    kept: list[onnx.NodeProto] = []
    for node in graph.node:
        key = tuple(node.output)
        body = node.SerializeToString()
        if key in seen:
            other = onnx.NodeProto.FromString(seen[key])
            if (other.op_type, list(other.input), list(other.attribute)) != (
                node.op_type,
                list(node.input),
                list(node.attribute),
            ):
                raise ValueError(f"two different nodes write {', '.join(key)}")
            continue
        seen[key] = body
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (stable)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an input nobody produces: " + ", ".join(n.name for n in pending[:5]))
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
        for node in ready:
            ordered.append(node)
            available.update(node.output)
    del graph.node[:]
    graph.node.extend(ordered)


class _Reader:
    """onnxruntime CalibrationDataReader over prepared images, one per call; ``set_range`` lets onnxruntime
    calibrate image by image (``CalibStridedMinMax``), so memory holds one image's activations, not all."""

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self._inputs = list(inputs)
        self._items: Iterator[dict[str, np.ndarray]] = iter(())
        self.set_range(0, len(self._inputs))

    def __len__(self) -> int:
        return len(self._inputs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._items = iter({INPUT_NAME: x} for x in self._inputs[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def rewind(self) -> None:
        self.set_range(0, len(self._inputs))


def to_int8(
    fp32_path: str | os.PathLike[str],
    calibration: Sequence[np.ndarray],
    *,
    per_channel: bool = True,
    recipe: Int8Recipe = INT8_RECIPES[0],
    reduce_range: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> onnx.ModelProto:
    """Static QDQ int8 quantisation of Conv/ConvTranspose, calibrated on ``calibration``, keeping the
    convolutions ``recipe`` names in float. ``reduce_range`` (7-bit weights) defaults to "no VNNI here":
    it avoids the u8s8 VPMADDUBSW saturation of AVX2/AVX-512 CPUs without VNNI (onnxruntime's quantization
    docs) and costs precision where VNNI computes u8s8 exactly. ``cache_dir``: activation ranges are
    computed once per calibration method there and reused by the next recipe."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    reader_type = type("CalibrationReader", (_Reader, CalibrationDataReader), {})
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[recipe.calibrate]
    extra: dict[str, object] = {"CalibTensorRangeSymmetric": False, "CalibStridedMinMax": 1}
    if recipe.calibrate == "percentile":
        extra["CalibPercentile"] = 99.999
    with tempfile.TemporaryDirectory(prefix="cyclegan-int8-") as tmp:
        out = Path(tmp) / "int8.onnx"
        # The Python quantisation API logs its "consider pre-processing" advice at WARNING on root.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrator prints its progress
                quantize_static(
                    str(fp32_path),
                    str(out),
                    reader_type(calibration),
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    op_types_to_quantize=INT8_OPS,
                    nodes_to_exclude=recipe.excluded(onnx.load(str(fp32_path))),
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    reduce_range=reduce_range,
                    calibrate_method=method,
                    extra_options=extra,
                    calibration_cache_path=Path(cache_dir) / f"ranges-{recipe.calibrate}.json" if cache_dir else None,
                )
        finally:
            root.setLevel(level)
        return onnx.load(str(out), load_external_data=True)


@dataclass
class Int8Trial:
    recipe: Int8Recipe
    psnr_db: float
    float_convs: list[str]
    model: onnx.ModelProto


def choose_int8(
    fp32_path: str | os.PathLike[str],
    calibration: Sequence[np.ndarray],
    psnr: Callable[[onnx.ModelProto], float],
    min_psnr: float,
    *,
    recipes: Sequence[Int8Recipe] = INT8_RECIPES,
    echo: Callable[[str], None] = lambda _msg: None,
) -> tuple[Int8Trial, list[Int8Trial]]:
    """Try ``recipes`` in order; return (the first reaching ``min_psnr`` or else the best one, all tried).

    Recipes that would keep the same convolutions in float as an earlier one are skipped."""
    fp32 = onnx.load(str(fp32_path))
    tried: list[Int8Trial] = []
    seen: set[tuple[tuple[str, ...], str]] = set()
    with tempfile.TemporaryDirectory(prefix="cyclegan-calib-") as cache:
        for recipe in recipes:
            excluded = recipe.excluded(fp32)
            key = (tuple(excluded), recipe.calibrate)
            if key in seen:
                continue
            seen.add(key)
            model = to_int8(fp32_path, calibration, recipe=recipe, cache_dir=cache)
            trial = Int8Trial(recipe, psnr(model), excluded, model)
            tried.append(trial)
            echo(
                f"  int8 recipe {recipe.name}: PSNR {trial.psnr_db:.1f} dB vs fp32 "
                f"({len(excluded)} conv(s) kept in float)"
            )
            if trial.psnr_db >= min_psnr:
                return trial, tried
    return max(tried, key=lambda t: t.psnr_db), tried
