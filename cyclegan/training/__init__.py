"""CycleGAN training with HuggingFace Accelerate (one code path for CPU, one GPU and many GPUs).

Entry points: :func:`cyclegan.training.trainer.train` (Python), ``train_accel.py`` and
``cyclegan train`` (command line, see :mod:`cyclegan.training.cli`).
"""

import os
import sys

from cyclegan.training.errors import TrainingSetupError

# OpenMP threads that wait at a barrier sleep instead of spinning. A spinning thread whose partner was
# descheduled (a loader worker, another job on a shared machine) burns the core that partner needs:
# `benchmarks/train_step.py --policy` measured 2 compute threads at 64 px 40-70x slower per step with
# OpenMP's default than with PASSIVE on a loaded 2-core machine. OpenMP reads it when torch loads, so it is
# set here, before the training code imports torch; a value the user exported wins.
# OPENMP_PASSIVE says whether it is in effect in this process (torch loaded before this line keeps its own).
OPENMP_PASSIVE = (
    "torch" not in sys.modules and os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE").upper() == "PASSIVE"
) or ("torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE")

__all__ = ["OPENMP_PASSIVE", "TrainingSetupError", "train"]


def train(*args, **kwargs):  # noqa: D103 - thin lazy alias so importing the package stays light
    from cyclegan.training.trainer import train as _train

    return _train(*args, **kwargs)
