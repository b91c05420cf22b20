"""CycleGAN networks (mirroring junyanz/pytorch-CycleGAN-and-pix2pix ``networks.py``).

Their size rules and vocabulary are in :mod:`cyclegan.contract` (torch-free, shared with serving).
"""

from .discriminators import NLayerDiscriminator, PixelDiscriminator
from .factory import build_discriminator, build_generator, generator_from_card, make_generator
from .init import init_weights
from .norm import conv_bias_for, norm_factory
from .resnet import ResnetBlock, ResnetGenerator
from .unet import UnetGenerator, UnetSkipConnectionBlock

__all__ = [
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "build_discriminator",
    "build_generator",
    "conv_bias_for",
    "generator_from_card",
    "init_weights",
    "make_generator",
    "norm_factory",
]
