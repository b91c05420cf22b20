"""Tiny ONNX "generators" for serving tests, built with ``onnx.helper`` (no torch).

They follow the export contract (docs/TEAM_CONTRACTS.md): one float32 NCHW input ``input`` and one
output ``output`` with dynamic batch/height/width, and ``metadata_props["cyclegan"]`` holding a
:class:`~cyclegan.contract.card.GeneratorCard`. Like a real ResNet generator they *refuse* inputs whose
height or width is not a multiple of ``size_multiple`` (a SpaceToDepth/DepthToSpace pair, an identity
that only accepts such sizes), so a test passing through them proves the stylizer pads correctly.

Two kinds:

* ``permute``: a 1x1 convolution that maps (R, G, B) -> (G, B, R) in the normalised space; with the
  default mean/std 0.5 the output pixels are exactly the input's channels rotated.
* ``conv``: a seeded 3x3 convolution (zero padding 1) plus bias, then Tanh -- a real spatial filter,
  checked against :func:`numpy_forward`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cyclegan.contract.card import METADATA_KEY, GeneratorCard

Kind = Literal["permute", "conv"]
OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime this project supports


def permute_weight() -> np.ndarray:
    """1x1 conv weight [out, in, 1, 1] taking output channel c from input channel (c + 1) % 3."""
    weight = np.zeros((3, 3, 1, 1), dtype=np.float32)
    for out_c in range(3):
        weight[out_c, (out_c + 1) % 3, 0, 0] = 1.0
    return weight


def conv_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The seeded 3x3 conv weight [3, 3, 3, 3] and bias [3] of the ``conv`` kind."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, 0.3, size=(3, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(0.0, 0.1, size=(3,)).astype(np.float32)
    return weight, bias


def make_card(
    *,
    direction: str = "A2B",
    source_domain: str = "photo",
    target_domain: str = "cartoon",
    size_multiple: int = 4,
    max_side: int | None = None,
    generator: str = "resnet_9blocks",
    precision: str = "fp32",
) -> GeneratorCard:
    return GeneratorCard(
        generator=generator,
        direction=direction,
        source_domain=source_domain,
        target_domain=target_domain,
        size_multiple=size_multiple,
        max_side=max_side,
        precision=precision,
        opset=OPSET,
        run_name="test-model",
        project_version="test",
    )


def make_test_model(
    path: str | Path,
    *,
    kind: Kind = "permute",
    direction: str = "A2B",
    source_domain: str = "photo",
    target_domain: str = "cartoon",
    size_multiple: int = 4,
    max_side: int | None = None,
    generator: str = "resnet_9blocks",
    seed: int = 0,
    card: GeneratorCard | None = None,
    with_metadata: bool = True,
    input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Write a tiny generator-shaped ONNX model to ``path`` and return the path.

    ``card`` overrides the metadata built from the other arguments; ``with_metadata=False`` and a
    different ``input_name``/``output_name`` build the "foreign model" cases the loader must refuse.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if card is None:
        card = make_card(
            direction=direction,
            source_domain=source_domain,
            target_domain=target_domain,
            size_multiple=size_multiple,
            max_side=max_side,
            generator=generator,
        )
    m = card.size_multiple

    nodes = [
        # Identity for sizes that are multiples of m; an error otherwise (like a real generator).
        helper.make_node("SpaceToDepth", [input_name], ["_s2d"], blocksize=m),
        helper.make_node("DepthToSpace", ["_s2d"], ["_x"], blocksize=m, mode="DCR"),
    ]
    if kind == "permute":
        initializers = [numpy_helper.from_array(permute_weight(), "W")]
        nodes.append(helper.make_node("Conv", ["_x", "W"], [output_name], kernel_shape=[1, 1]))
    elif kind == "conv":
        weight, bias = conv_weights(seed)
        initializers = [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")]
        nodes.append(helper.make_node("Conv", ["_x", "W", "B"], ["_y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Tanh", ["_y"], [output_name]))
    else:
        raise ValueError(f"unknown test model kind {kind!r} (use 'permute' or 'conv')")

    graph = helper.make_graph(
        nodes,
        "tiny_generator",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests.onnx_models")
    model.ir_version = IR_VERSION
    if with_metadata:
        helper.set_model_props(model, {METADATA_KEY: card.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def numpy_forward(x: np.ndarray, *, kind: Kind = "permute", seed: int = 0) -> np.ndarray:
    """The test model's maths in numpy: float32 NCHW (normalised) in, NCHW out."""
    x = np.asarray(x, dtype=np.float32)
    if kind == "permute":
        return np.roll(x, -1, axis=1)  # out[c] = in[(c + 1) % 3]
    weight, bias = conv_weights(seed)
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, weight.shape[0], h, w), dtype=np.float64)
    for dy in range(3):
        for dx in range(3):
            patch = padded[:, :, dy : dy + h, dx : dx + w]
            out += np.einsum("oc,nchw->nohw", weight[:, :, dy, dx], patch)
    out += bias[None, :, None, None]
    return np.tanh(out).astype(np.float32)
