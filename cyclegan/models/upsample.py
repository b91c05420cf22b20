"""The generators' 2x upsampling layers: the reference's transposed convolution, or resize-convolution.

``deconv`` is layer for layer the reference (its released weights load). ``resize`` is nearest-neighbour 2x
upsampling followed by a 3x3 convolution with reflection padding: every output pixel gets the same number of
kernel taps, so it cannot draw the stride-2 checkerboard a transposed convolution draws when its kernel size is
not a multiple of its stride (Odena, Dumoulin, Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016).
"""

from __future__ import annotations

from torch import nn

from cyclegan.contract.card import UPSAMPLE_KINDS


def upsample2x(kind: str, in_nc: int, out_nc: int, *, deconv_kernel: int, bias: bool = True) -> nn.Module:
    """Doubles height and width; ``deconv_kernel`` is the reference's kernel (3 in the ResNet, 4 in the U-Net)."""
    if kind == "deconv":
        output_padding = 1 if deconv_kernel % 2 else 0
        return nn.ConvTranspose2d(
            in_nc, out_nc, kernel_size=deconv_kernel, stride=2, padding=1, output_padding=output_padding, bias=bias
        )
    if kind == "resize":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_nc, out_nc, kernel_size=3, padding=0, bias=bias),
        )
    raise ValueError(f"unknown upsampling {kind!r}: use one of {', '.join(UPSAMPLE_KINDS)}")
