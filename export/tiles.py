"""The companion graphs for seam-free tiles (see :mod:`cyclegan.contract.tiles`): a stats form and a tiles form.

Both are the generator with its ``InstanceNorm2d`` modules swapped for small modules before ``torch.onnx.export``,
so the exported graphs stay plain ops (ReduceMean, Sub, Mul, Sqrt, Div):

* :class:`StatsGenerator` records each InstanceNorm layer's per-channel mean and biased variance while it runs
  normally, and returns them concatenated: ``[mean_1, var_1, mean_2, var_2, ...]``, shape [N, stats_size];
* :class:`TilesGenerator` takes that vector as a second input and normalises each layer with its slice of it
  instead of the statistics of the tile it is running on.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from cyclegan.contract.card import GeneratorCard
from cyclegan.contract.runtime import INPUT_NAME, OUTPUT_NAME
from cyclegan.contract.tiles import STATS_NAME
from export.onnx_export import _quiet_export, example_side
from export.sources import ExportError

log = logging.getLogger(__name__)


class _Shared:
    """What the swapped norm layers share during one forward: the recorded or the given statistics."""

    def __init__(self) -> None:
        self.recorded: list[torch.Tensor] = []
        self.given: torch.Tensor | None = None


class _RecordNorm(nn.Module):
    def __init__(self, eps: float, shared: _Shared) -> None:
        super().__init__()
        self.eps = eps
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True)
        self.shared.recorded += [mean.flatten(1), var.flatten(1)]
        return (x - mean) / torch.sqrt(var + self.eps)


class _GivenNorm(nn.Module):
    def __init__(self, eps: float, offset: int, channels: int, shared: _Shared) -> None:
        super().__init__()
        self.eps, self.offset, self.channels = eps, offset, channels
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = self.shared.given
        assert stats is not None
        c, o = self.channels, self.offset
        mean = stats[:, o : o + c, None, None]
        var = stats[:, o + c : o + 2 * c, None, None]
        return (x - mean) / torch.sqrt(var + self.eps)


def _instance_norms(module: nn.Module) -> list[tuple[str, nn.InstanceNorm2d]]:
    found = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    for name, m in found:
        if m.affine or m.track_running_stats:
            raise ExportError(f"InstanceNorm layer {name} has affine/running statistics: not supported for tiles")
    return found


def _swap(module: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child, new)


def stats_size(module: nn.Module) -> int:
    """Length of the statistics vector: twice the channels of every InstanceNorm layer."""
    return sum(2 * m.num_features for _, m in _instance_norms(module))


class StatsGenerator(nn.Module):
    """``input`` -> ``stats`` [N, stats_size] (every InstanceNorm layer's mean, then variance)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(generator).eval()
        self.shared = _Shared()
        norms = _instance_norms(self.net)
        if not norms:
            raise ExportError("the generator has no InstanceNorm layer: it tiles without statistics")
        for name, m in norms:
            _swap(self.net, name, _RecordNorm(m.eps, self.shared))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shared.recorded = []
        self.net(x)
        recorded, self.shared.recorded = self.shared.recorded, []
        return torch.cat(recorded, dim=1)


class TilesGenerator(nn.Module):
    """(``input``, ``stats``) -> ``output``: the generator normalised with the given statistics."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(generator).eval()
        self.shared = _Shared()
        offset = 0
        for name, m in _instance_norms(self.net):
            _swap(self.net, name, _GivenNorm(m.eps, offset, m.num_features, self.shared))
            offset += 2 * m.num_features
        self.stats_size = offset

    def forward(self, x: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        self.shared.given = stats
        try:
            return self.net(x)
        finally:
            self.shared.given = None


def _example(card: GeneratorCard) -> torch.Tensor:
    side = example_side(card)
    return torch.rand(2, card.input_nc, side, side + card.size_multiple) * 2 - 1


def export_stats(generator: nn.Module, card: GeneratorCard, opset: int) -> onnx.ModelProto:
    module = StatsGenerator(generator)
    x = _example(card)
    dims = {0: "batch", 2: "height", 3: "width"}
    return _export(module, (x,), [INPUT_NAME], [STATS_NAME], {INPUT_NAME: dims, STATS_NAME: {0: "batch"}}, opset)


def export_tiles(generator: nn.Module, card: GeneratorCard, opset: int) -> onnx.ModelProto:
    module = TilesGenerator(generator)
    x = _example(card)
    with torch.no_grad():
        stats = StatsGenerator(generator)(x)
    dims = {0: "batch", 2: "height", 3: "width"}
    return _export(
        module,
        (x, stats),
        [INPUT_NAME, STATS_NAME],
        [OUTPUT_NAME],
        {INPUT_NAME: dims, STATS_NAME: {0: "batch"}, OUTPUT_NAME: dims},
        opset,
    )


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int,
) -> onnx.ModelProto:
    """The TorchScript exporter (tracing): the swapped modules share state through Python, which tracing
    follows and torch.export's strict checks may not; the graphs are checked for parity afterwards."""
    with tempfile.TemporaryDirectory() as tmp, _quiet_export(), torch.no_grad():
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            opset_version=opset,
            dynamo=False,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
        return onnx.load(str(path), load_external_data=True)


def check_companions(
    generator: nn.Module,
    stats_session: object,
    tiles_session: object,
    card: GeneratorCard,
    *,
    tolerance: float,
    where: str,
) -> float:
    """Parity of the companions with PyTorch: the stats form's statistics, and the tiles form given them must
    reproduce the plain generator. Returns the worst max abs difference; raises ExportError beyond tolerance."""
    worst = 0.0
    generator = generator.eval()
    recorder = StatsGenerator(generator)
    for seed, (h, w) in enumerate(((example_side(card), example_side(card) + 2 * card.size_multiple), (96, 128))):
        h = max(h, card.min_side)
        w = max(w, card.min_side)
        h -= h % card.size_multiple
        w -= w % card.size_multiple
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, size=(1, card.input_nc, h, w)).astype(np.float32)
        with torch.no_grad():
            want = generator(torch.from_numpy(x)).numpy()
            want_stats = recorder(torch.from_numpy(x)).numpy()
        stats = stats_session.run([STATS_NAME], {INPUT_NAME: x})[0]  # type: ignore[attr-defined]
        got = tiles_session.run([OUTPUT_NAME], {INPUT_NAME: x, STATS_NAME: stats})[0]  # type: ignore[attr-defined]
        # Statistics: relative to their scale (variances of deep layers can be large).
        stats_diff = float(np.max(np.abs(stats - want_stats) / (1.0 + np.abs(want_stats))))
        out_diff = float(np.max(np.abs(got - want)))
        worst = max(worst, out_diff)
        if not (stats_diff <= tolerance and out_diff <= tolerance):
            raise ExportError(
                f"{where}: the tiles companions disagree with PyTorch at {h}x{w}: statistics {stats_diff:.2e}, "
                f"output {out_diff:.2e} (tolerance {tolerance:g}); nothing was written"
            )
    return worst
