"""Choosing the mixed-precision mode: ``auto`` means bf16 where the hardware makes it faster.

On a CPU that is AMX only: with AVX512-BF16 alone (no AMX), bf16 autocast was slower than fp32 for these
convolutions (``benchmarks/train_step.py``, 2026-12-02, 2-core Intel Xeon with avx512_bf16 and no amx: ResNet-9
full step 0.75x at 64 px, 0.71x at 256 px), so ``auto`` keeps fp32 there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cyclegan.training.errors import TrainingSetupError

_CPU_BF16_FLAGS = ("amx_bf16",)


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it is not available)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16() -> bool:
    """True when the CPU has AMX tiles for bf16; AVX512-BF16 alone or emulated bf16 is slower than fp32 here."""
    if "AMX" in torch.backends.cpu.get_cpu_capability().upper():
        return True
    return any(flag in cpu_flags() for flag in _CPU_BF16_FLAGS)


def resolve_mixed_precision(requested: str, use_cuda: bool) -> str:
    """Map the config value (``no``/``bf16``/``fp16``/``auto``) to what Accelerate gets.

    fp16 needs a CUDA device (loss scaling on CPU is not supported): a clear error otherwise.
    """
    if requested == "auto":
        if use_cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "no"
        return "bf16" if cpu_has_native_bf16() else "no"
    if requested == "fp16" and not use_cuda:
        raise TrainingSetupError(
            "train.mixed_precision=fp16 needs a CUDA GPU; on a CPU use train.mixed_precision=bf16, no or auto"
        )
    if requested not in ("no", "bf16", "fp16"):
        raise TrainingSetupError(f"train.mixed_precision must be no, bf16, fp16 or auto, got {requested!r}")
    return requested
