"""Turn one torch generator into one self-contained ONNX model that carries its GeneratorCard.

The graph has a single input ``input`` and a single output ``output``, float32 NCHW, with dynamic
batch, height and width (see docs/TEAM_CONTRACTS.md). We use the torch.export-based exporter
(``dynamo=True``): for ResNet-9 it gives a graph of ~90 nodes instead of ~440 for the TorchScript
exporter (no Shape/Slice/Reshape plumbing around the reflect pads). Should it fail for some
architecture, we fall back to the TorchScript exporter; both are held to the same parity check.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import onnx
import torch
from torch import nn

from cyclegan.contract import files, sizes
from cyclegan.contract.card import METADATA_KEY, GeneratorCard
from cyclegan.contract.runtime import INPUT_NAME, OUTPUT_NAME
from export.sources import ExportError

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
Exporter = Literal["dynamo", "torchscript"]


def export_card(card: GeneratorCard, *, precision: str, opset: int, max_side: int | None) -> GeneratorCard:
    """The card written into an ONNX file: the training card plus the export fields."""
    return dataclasses.replace(card, precision=precision, opset=opset, max_side=max_side, extra=dict(card.extra))


def example_side(card: GeneratorCard) -> int:
    """A small legal side for the tracing example (reflect pads need sides larger than the pad)."""
    return sizes.round_up(64, card.size_multiple, card.min_side)


def to_onnx_proto(
    module: nn.Module,
    card: GeneratorCard,
    *,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter | Literal["auto"] = "auto",
) -> tuple[onnx.ModelProto, str]:
    """Export ``module`` (in eval mode) to an in-memory ModelProto; returns it and the exporter used."""
    module = module.eval()
    side = example_side(card)
    # Batch 2 and distinct H/W: torch.export specialises dimensions whose example size is 1 or equal.
    example = torch.rand(2, card.input_nc, side, side + card.size_multiple) * 2 - 1
    order: list[Exporter] = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    errors: list[str] = []
    for kind in order:
        try:
            proto = (
                _export_dynamo(module, example, opset)
                if kind == "dynamo"
                else _export_torchscript(module, example, opset)
            )
        except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the next one
            errors.append(f"{kind}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            log.warning("%s exporter failed for %s, trying the next one: %s", kind, card.generator, errors[-1])
            continue
        return proto, kind
    raise ExportError(f"could not export generator {card.generator!r} to ONNX opset {opset}: " + "; ".join(errors))


def _export_dynamo(module: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    # Dim.DYNAMIC lets torch.export derive the constraints itself (e.g. height divisible by 256 for
    # UNet-256) instead of failing on them; the dims are renamed to batch/height/width below.
    dynamic = torch.export.Dim.DYNAMIC
    with _quiet_export():
        program = torch.onnx.export(
            module,
            (example,),
            f=None,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=({0: dynamic, 2: dynamic, 3: dynamic},),  # positional: forward()'s arg name varies
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    # Name the output dims like the input's (the exporter derives e.g. "4*height//4"-style expressions).
    _set_dim_params(proto)
    return proto


def _export_torchscript(module: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with tempfile.TemporaryDirectory() as tmp, _quiet_export():
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=False,
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
            do_constant_folding=True,
        )
        return onnx.load(str(path), load_external_data=True)


def _set_dim_params(proto: onnx.ModelProto) -> None:
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        for index, name in ((0, "batch"), (2, "height"), (3, "width")):
            if len(dims) > index:
                dims[index].ClearField("dim_value")
                dims[index].dim_param = name


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporters' progress prints and known-harmless warnings (InstanceNorm train=True)."""
    import contextlib
    import io

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def attach_card(proto: onnx.ModelProto, card: GeneratorCard) -> onnx.ModelProto:
    """Write ``card`` into ``metadata_props`` (replacing any earlier entry under the same key)."""
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in card.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "cyclegan-toolkit"
    if card.project_version:
        proto.producer_version = card.project_version
    return proto


def check_io(proto: onnx.ModelProto) -> None:
    """Raise ExportError unless the graph has exactly the contract's input and output."""
    inputs = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    outputs = [o.name for o in proto.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ExportError(
            f"exported graph has inputs {inputs} and outputs {outputs}, expected ['input'] and ['output']"
        )


def save_single_file(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Write ``proto`` as one .onnx file (weights inline) via a temporary file in the same folder.

    Returns the temporary path: the caller verifies it and then ``os.replace``s it into place, so a
    failed verification never leaves a half-trusted model under the final name.
    """
    path = Path(path)
    tmp = files.temporary_name(path)  # hidden, with this process's id: a later export removes it if we are killed
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        onnx.checker.check_model(str(tmp))
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise files.output_error(path, exc) from None
        raise
    return tmp
