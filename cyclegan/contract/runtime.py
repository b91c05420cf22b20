"""How exported models are run: the ONNX tensor names, onnxruntime session settings, CPU counting.

onnxruntime is imported only by :func:`session_options`, so this module loads in any environment.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

INPUT_NAME = "input"  # float NCHW, dims [batch, channels, height, width] dynamic
OUTPUT_NAME = "output"  # same layout


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup cpusets, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB since it started (its own program, not its parent's).

    ``VmHWM`` from ``/proc/self/status`` where there is one: Linux carries ``getrusage``'s ``ru_maxrss`` across
    ``fork`` + ``exec``, so a fresh worker started by a big parent reports the parent's peak there.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def session_options(threads: int | None = None) -> Any:
    """``onnxruntime.SessionOptions`` for a CPU: ``threads`` intra-op threads (default: every available CPU),
    one inter-op thread, full graph optimisation, and no spinning (several sessions share the cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads if threads is not None else available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; failed runs raise anyway
    return options


def release_freed_memory() -> None:
    """Give memory the process freed back to the system (glibc ``malloc_trim``; elsewhere nothing).

    Loading an onnxruntime session parses the model and copies its weights; the freed parse buffers stay in
    the C heap and count in the resident size (ResNet-9: about 80 MB per session). Serving calls this after
    loading sessions, so peak memory is what the sessions use, not what loading them once needed.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return
    if trim is not None:
        trim(0)


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s), or the platform's machine type: written next to every measured figure."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())[:120]
    except OSError:
        pass
    return (platform.processor() or platform.machine() or "unknown")[:120]
