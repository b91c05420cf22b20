"""Export trained generators (safetensors + metadata) to verified ONNX models."""
