"""CycleGAN networks (mirroring junyanz/pytorch-CycleGAN-and-pix2pix ``networks.py``) and their size rules."""

from .discriminators import NLayerDiscriminator, PixelDiscriminator
from .factory import (
    DISCRIMINATOR_KINDS,
    GENERATOR_KINDS,
    build_discriminator,
    build_generator,
    generator_from_card,
    make_generator,
)
from .init import INIT_KINDS, init_weights
from .norm import NORM_KINDS, conv_bias_for, norm_factory
from .resnet import ResnetBlock, ResnetGenerator
from .sizes import InputSizeError, check_input_size, check_multiple, crop_back, pad_to_multiple, size_multiple
from .unet import UnetGenerator, UnetSkipConnectionBlock

__all__ = [
    "DISCRIMINATOR_KINDS",
    "GENERATOR_KINDS",
    "INIT_KINDS",
    "NORM_KINDS",
    "InputSizeError",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "build_discriminator",
    "build_generator",
    "check_input_size",
    "check_multiple",
    "conv_bias_for",
    "crop_back",
    "generator_from_card",
    "init_weights",
    "make_generator",
    "norm_factory",
    "pad_to_multiple",
    "size_multiple",
]
