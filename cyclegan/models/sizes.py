"""The generators' input-size check in torch (the rules themselves are in :mod:`cyclegan.contract.sizes`)."""

from __future__ import annotations

import torch

from cyclegan.contract.sizes import check_size


def check_input(name: str, multiple: int, least: int, x: torch.Tensor) -> None:
    """Raise ``InputSizeError`` for a batch the network cannot process; skipped while tracing/exporting."""
    if not is_tracing():
        check_size(name, multiple, int(x.shape[-2]), int(x.shape[-1]), least)


def is_tracing() -> bool:
    """True while torch.jit / torch.compile / torch.export / torch.onnx trace the model (checks are skipped)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is not None:
        if getattr(compiler, "is_compiling", lambda: False)():
            return True
        if getattr(compiler, "is_exporting", lambda: False)():
            return True
    return False
