"""U-Net generator, layer for layer as ``UnetGenerator`` in junyanz/pytorch-CycleGAN-and-pix2pix."""

from __future__ import annotations

import torch
from torch import nn

from cyclegan.contract import sizes

from .norm import conv_bias_for, norm_factory
from .sizes import check_input
from .skip import SkipSource
from .upsample import upsample2x


class UnetSkipConnectionBlock(nn.Module):
    """down -> submodule -> up, concatenated with the block's input (except the outermost block).

    As in the original, the first LeakyReLU is in-place, so the skip connection carries the
    activated input; kept on purpose so trained weights behave identically.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "instance",
        use_dropout: bool = False,
        upsample: str = "deconv",
    ) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer = norm_factory(norm)
        bias = conv_bias_for(norm)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            assert submodule is not None
            upconv = upsample2x(upsample, inner_nc * 2, outer_nc, deconv_kernel=4)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = upsample2x(upsample, inner_nc, outer_nc, deconv_kernel=4, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, norm_layer(outer_nc)]
        else:
            assert submodule is not None
            upconv = upsample2x(upsample, inner_nc * 2, outer_nc, deconv_kernel=4, bias=bias)
            layers = [downrelu, downconv, norm_layer(inner_nc), submodule, uprelu, upconv, norm_layer(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 levels: 7 for unet_128, 8 for unet_256.

    Sides must be multiples of ``2**num_downs``.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
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
    ) -> None:
        super().__init__()
        self.global_skip = global_skip  # see .skip
        self.skip_source = SkipSource(input_nc, skip_blur, skip_filter, skip_change, skip_levels, outlines)
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        self.kind = f"unet_{2**num_downs}"
        up = {"norm": norm, "upsample": upsample}
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, **up)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **up)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, **up)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, **up)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, **up)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **up)
        self.size_multiple, self.min_side = sizes.unet_rule(num_downs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self.kind, self.size_multiple, self.min_side, x)
        return self.skip_source.add(x, self.model(x)) if self.global_skip else self.model(x)
