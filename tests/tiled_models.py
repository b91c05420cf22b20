"""A small exported instance-norm ResNet with its seam-free tiles companions (NAME.stats.onnx, NAME.tiles.onnx)."""

from __future__ import annotations

from pathlib import Path

import torch

from cyclegan.contract.card import GeneratorCard
from cyclegan.generator_io import save_generator
from cyclegan.models.factory import generator_from_card
from export.pipeline import ExportOptions, VariantReport, export_generator


def export_small_resnet(folder: Path) -> VariantReport:
    """ResNet-6, 8 filters, seeded random weights, exported (torchscript) to ``folder/models``."""
    torch.manual_seed(0)
    card = GeneratorCard(generator="resnet_6blocks", ngf=8, norm="instance", run_name="small")
    save_generator(folder / "small.safetensors", generator_from_card(card), card)
    report = export_generator(
        folder / "small.safetensors", folder / "models", ExportOptions(bench_side=0, exporter="torchscript")
    )
    (variant,) = report.variants
    return variant
