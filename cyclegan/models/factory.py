"""Build networks from a :class:`ModelConfig` or from the :class:`GeneratorCard` saved with the weights."""

from __future__ import annotations

from torch import nn

from cyclegan.config import ModelConfig
from cyclegan.contract.card import GeneratorCard

from .discriminators import NLayerDiscriminator, PixelDiscriminator
from .init import init_weights
from .resnet import ResnetGenerator
from .skip import zero_last_conv
from .unet import UnetGenerator


def make_generator(
    kind: str,
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    use_dropout: bool = False,
    upsample: str = "deconv",
    global_skip: bool = False,
    skip_blur: float = 0.0,
    skip_filter: str = "gaussian",
    skip_change: str = "rgb",
    skip_levels: int = 0,
    outlines: float = 0.0,
) -> nn.Module:
    """The bare architecture (PyTorch default init); ``kind`` is one of ``contract.card.GENERATOR_KINDS``."""
    if kind in ("resnet_9blocks", "resnet_6blocks"):
        n_blocks = 9 if kind == "resnet_9blocks" else 6
        return ResnetGenerator(
            input_nc,
            output_nc,
            ngf,
            norm=norm,
            use_dropout=use_dropout,
            n_blocks=n_blocks,
            upsample=upsample,
            global_skip=global_skip,
            skip_blur=skip_blur,
            skip_filter=skip_filter,
            skip_change=skip_change,
            skip_levels=skip_levels,
            outlines=outlines,
        )
    if kind in ("unet_128", "unet_256"):
        num_downs = 7 if kind == "unet_128" else 8
        return UnetGenerator(
            input_nc,
            output_nc,
            num_downs,
            ngf,
            norm=norm,
            use_dropout=use_dropout,
            upsample=upsample,
            global_skip=global_skip,
            skip_blur=skip_blur,
            skip_filter=skip_filter,
            skip_change=skip_change,
            skip_levels=skip_levels,
            outlines=outlines,
        )
    raise ValueError(f"unknown generator {kind!r}")  # the config and the card only admit GENERATOR_KINDS


def build_generator(model_cfg: ModelConfig, *, input_nc: int | None = None, output_nc: int | None = None) -> nn.Module:
    """Generator per the config, weights initialised per ``init_type``/``init_gain``.

    ``input_nc``/``output_nc`` default to the config's; swap them for the B->A generator when they differ.
    """
    net = make_generator(
        model_cfg.generator,
        model_cfg.input_nc if input_nc is None else input_nc,
        model_cfg.output_nc if output_nc is None else output_nc,
        model_cfg.ngf,
        model_cfg.norm,
        model_cfg.use_dropout,
        model_cfg.upsample,
        model_cfg.global_skip,
        model_cfg.skip_blur,
        model_cfg.skip_filter,
        model_cfg.skip_change,
        model_cfg.skip_levels,
    )
    net = init_weights(net, model_cfg.init_type, model_cfg.init_gain)
    # The plain image skip starts at exactly the identity; with a blurred skip the identity is not on offer, and
    # a live last layer lets every layer learn from the first step.
    return zero_last_conv(net) if model_cfg.global_skip and not model_cfg.skip_blur else net


def build_discriminator(model_cfg: ModelConfig, *, input_nc: int | None = None) -> nn.Module:
    """Discriminator per the config (norm = ``norm_d or norm``), weights initialised.

    ``input_nc`` defaults to ``model_cfg.output_nc`` (D_A judges domain-B images, as in the original);
    pass ``model_cfg.input_nc`` for D_B when the channel counts differ.
    """
    nc = model_cfg.output_nc if input_nc is None else input_nc
    norm = model_cfg.norm_d or model_cfg.norm
    kind = model_cfg.discriminator
    if kind == "basic":
        net: nn.Module = NLayerDiscriminator(nc, model_cfg.ndf, n_layers=3, norm=norm)
    elif kind == "n_layers":
        net = NLayerDiscriminator(nc, model_cfg.ndf, n_layers=model_cfg.n_layers_d, norm=norm)
    elif kind == "pixel":
        net = PixelDiscriminator(nc, model_cfg.ndf, norm=norm)
    else:
        raise ValueError(f"unknown discriminator {kind!r}")  # the config only admits DiscriminatorKind
    return init_weights(net, model_cfg.init_type, model_cfg.init_gain)


def generator_from_card(card: GeneratorCard) -> nn.Module:
    """The architecture a card describes, uninitialised (weights are loaded right after)."""
    return make_generator(
        card.generator,
        card.input_nc,
        card.output_nc,
        card.ngf,
        card.norm,
        card.use_dropout,
        card.upsample,
        card.global_skip,
        card.skip_blur,
        card.skip_filter,
        card.skip_change,
        card.skip_levels,
        outlines=card.outlines,
    )
