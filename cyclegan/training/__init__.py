"""CycleGAN training with HuggingFace Accelerate (one code path for CPU, one GPU and many GPUs).

Entry points: :func:`cyclegan.training.trainer.train` (Python), ``train_accel.py`` and
``cyclegan train`` (command line, see :mod:`cyclegan.training.cli`).
"""

from cyclegan.training.errors import TrainingSetupError

__all__ = ["TrainingSetupError", "train"]


def train(*args, **kwargs):  # noqa: D103 - thin lazy alias so importing the package stays light
    from cyclegan.training.trainer import train as _train

    return _train(*args, **kwargs)
