"""CycleGAN stylization toolkit: datasets from video, training with Accelerate, ONNX export."""

__version__ = "0.1.0"
