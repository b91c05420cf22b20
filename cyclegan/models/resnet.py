"""ResNet generator, layer for layer as ``ResnetGenerator`` in junyanz/pytorch-CycleGAN-and-pix2pix."""

from __future__ import annotations

import torch
from torch import nn

from cyclegan.contract import sizes

from .norm import conv_bias_for, norm_factory
from .sizes import check_input
from .skip import SkipSource
from .upsample import upsample2x


class ResnetBlock(nn.Module):
    """conv-norm-relu-(dropout)-conv-norm with reflection padding, plus the identity skip."""

    def __init__(self, dim: int, norm: str, use_dropout: bool) -> None:
        super().__init__()
        norm_layer = norm_factory(norm)
        bias = conv_bias_for(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings, c7s1-output, tanh.

    ``upsample`` is ``deconv`` (the reference's) or ``resize`` (see :mod:`.upsample`).

    State-dict names (``model.N...``) match the original so its released weights load.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        upsample: str = "deconv",
        global_skip: bool = False,
        skip_blur: float = 0.0,
        skip_filter: str = "gaussian",
        skip_change: str = "rgb",
        skip_levels: int = 0,
        outlines: float = 0.0,
    ) -> None:
        super().__init__()
        self.global_skip = global_skip  # see .skip
        self.skip_source = SkipSource(input_nc, skip_blur, skip_filter, skip_change, skip_levels, outlines)
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.kind = f"resnet_{n_blocks}blocks"
        self.size_multiple, self.min_side = sizes.RESNET_RULE
        norm_layer = norm_factory(norm)
        bias = conv_bias_for(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        n_down = 2
        for i in range(n_down):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_down
        layers += [ResnetBlock(ngf * mult, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(n_down):
            mult = 2 ** (n_down - i)
            layers += [
                upsample2x(upsample, ngf * mult, ngf * mult // 2, deconv_kernel=3, bias=bias),
                norm_layer(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self.kind, self.size_multiple, self.min_side, x)
        return self.skip_source.add(x, self.model(x)) if self.global_skip else self.model(x)
