"""Torch-free serving: an onnxruntime stylizer, a CLI and a Telegram bot.

Nothing under ``serve/`` may import torch; the slim bot image does not have it.
"""
