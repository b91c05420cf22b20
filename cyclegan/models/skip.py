"""The optional image skip (``model.global_skip``): the generator predicts a change to its input picture.

``output = clamp(input + network(input), -1, 1)`` with the network's last convolution initialised to zero, so a
fresh generator returns its input exactly and training only ever edits the photo. It carries the input's colours
through (instance norm in the first layers removes each picture's mean colour, which a plain generator must then
guess: the random palettes of short runs) and starts both generators at the identity with no warm-up steps.
Needs as many output channels as input channels.

``model.skip_blur`` (sigma in pixels, 0 = off) adds a Gaussian blur of the input instead of the input itself:
``output = clamp(blur(input) + network(input), -1, 1)``, with the last convolution initialised as usual (the
identity is not on offer). The blurred picture carries the colours (what instance norm hides from the network)
but no detail, so the network draws every edge and flat area of the style itself -- with the sharp input in the
skip, its cheapest answer is to leave the photo as it is (``benchmarks/quality.py``: MAE 29.6 with a 3 px blur
against 29.0 for the plain skip, which only darkens a few edges, and 43.1 without a skip, whose colours drift).
It is a local operation (tiles and video need nothing new), with a fixed kernel outside the state dict.

``model.skip_change=luminance`` lets the network change the lightness only: the mean of its output channels is
added to every channel of the skip, so each pixel keeps the skip's hue (R-G and B-G) and can only be lightened
or darkened -- flat areas, shading and dark outlines, but no colour from the style domain's palette. The last
convolution keeps its three channels, so the weights have the same shapes either way.

``model.skip_levels`` (0 = off) puts the skip's lightness into that many flat tones (cel shading), with the soft
staircase of Winnemoeller, Olsen and Gooch, "Real-Time Video Abstraction" (SIGGRAPH 2006): each step is a smooth
tanh, so a tone boundary does not jump from frame to frame of a video. It is applied after the smoothing, to the
mean of the channels (hues kept). The network then finds crisp tone boundaries to outline, not the smooth ramps
of a smoothed photo (README, "Flat tones and outlines"). Training sees the staircase and passes gradients straight
through it, as if it were the identity: its own derivative is about zero on each step, which would hide the
cycle's error from the other generator.

The card's ``outlines`` (0 = off; set by ``cyclegan export --outlines``, never in training) draws dark outlines on
the output where the skip's smoothing changes colour: the third step of the same paper's abstraction, a soft
difference of Gaussians (Marr-Hildreth), here per channel so that a change of hue at the same lightness (a red
saucer on brown wood) is outlined too. A filter, not learnt: drawn on the skip for training, the network learnt to
answer the lines with light streaks (README, "Flat tones and outlines").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.contract.card import SKIP_CHANGES, SKIP_FILTERS

# The bilateral skip (``model.skip_filter=bilateral``): 2r+1 neighbours per axis with r = ceil(sigma), colour
# distances in model units ([-1, 1]; photo texture is about 0.1, edges 0.5 and more), applied three times. Chosen
# by eye on the benchmark's photos: fur and wood become flat areas, the edges between them stay sharp.
BILATERAL_RANGE_SIGMA = 0.25
BILATERAL_ITERATIONS = 3
# The soft staircase's steepness: the tone changes across a bin edge over about half a step (a pixel a quarter of a
# step from the edge is 92% of the way to its bin's tone, tanh(1.5); at the bin's centre 99.5%, tanh(3)).
LEVELS_STEEPNESS = 3.0
# The outlines, in Winnemoeller et al.'s units (each channel 0-100): a pixel darkens where the inner Gaussian is below
# OUTLINE_THRESHOLD times the outer one (sigma x OUTLINE_RATIO), by the factor 1 + tanh(OUTLINE_SHARPNESS x the
# difference); the darkest channel's factor darkens the pixel. The ratio is the paper's; threshold and sharpness
# (the paper's 0.98 and 0.75-5) were chosen on the paired benchmark with the demo's trained generator and looked
# at on the demo's photos (README, "Flat tones and outlines"): 0.98 and 1.0 drew the fur as dots and lines where
# the ground truth has none.
OUTLINE_RATIO = 1.6
OUTLINE_THRESHOLD = 0.95
OUTLINE_SHARPNESS = 0.5


class SkipSource(nn.Module):
    """What the skip adds the network's output to: the input itself (``sigma == 0``) or a smoothing of it: a
    Gaussian blur (``kind="gaussian"``), an edge-preserving bilateral filter (``kind="bilateral"``), or the
    bilateral filter then the blur (``kind="bilateral_gaussian"``: flat areas, and edges the network redraws).
    :meth:`add` adds the network's change to it: all of it (``change="rgb"``) or its lightness (``"luminance"``).
    ``levels`` puts the skip's lightness into flat tones; ``outlines`` (a sigma in px) draws dark lines on the sum.
    """

    def __init__(
        self,
        channels: int,
        sigma: float = 0.0,
        kind: str = "gaussian",
        change: str = "rgb",
        levels: int = 0,
        outlines: float = 0.0,
    ) -> None:
        super().__init__()
        if levels < 0 or levels == 1:
            raise ValueError(f"the skip's levels must be 0 (off) or at least 2, got {levels}")
        if not outlines >= 0:
            raise ValueError(f"the skip's outline sigma must be 0 (off) or more, got {outlines}")
        self.levels = levels
        if kind not in SKIP_FILTERS:
            raise ValueError(f"unknown skip filter {kind!r}: use one of {', '.join(SKIP_FILTERS)}")
        if change not in SKIP_CHANGES:
            raise ValueError(f"unknown skip change {change!r}: use one of {', '.join(SKIP_CHANGES)}")
        self.luminance_change = change == "luminance"
        if kind != "gaussian" and not sigma:
            raise ValueError(f"the {kind} skip needs a spatial sigma > 0")
        self.sigma = sigma
        self.bilateral_radius = math.ceil(sigma) if kind != "gaussian" else 0
        self.radius = 0 if kind == "bilateral" else (math.ceil(3 * sigma) if sigma > 0 else 0)  # the blur's
        self.outline_radius = math.ceil(3 * OUTLINE_RATIO * outlines) if outlines > 0 else 0
        kernels = {
            "blur": gaussian_kernel(sigma, self.radius),
            # the outlines' inner and outer Gaussian, both as long as the outer one
            "outline_inner": gaussian_kernel(outlines, self.outline_radius, math.ceil(3 * outlines)),
            "outline_outer": gaussian_kernel(OUTLINE_RATIO * outlines, self.outline_radius),
        }
        # Buffers, not weights: kept out of the state dict, so saved generators have the same keys either way. One
        # separable kernel per channel, shaped for conv2d (the ONNX exporters need the shapes fixed).
        for name, kernel in kernels.items():
            kernel = kernel.repeat(channels, 1)
            self.register_buffer(f"{name}_rows", kernel.view(channels, 1, 1, -1).clone(), persistent=False)
            self.register_buffer(f"{name}_columns", kernel.view(channels, 1, -1, 1).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.toned(self.smooth(x))

    def toned(self, smoothed: torch.Tensor) -> torch.Tensor:
        return flat_tones(smoothed, self.levels) if self.levels else smoothed

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        if self.bilateral_radius:
            for _ in range(BILATERAL_ITERATIONS):
                x = bilateral(x, self.bilateral_radius, self.sigma, BILATERAL_RANGE_SIGMA)
        if self.radius:
            x = separable_blur(x, self.blur_rows, self.blur_columns)
        return x

    def add(self, x: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        """The skip of ``x`` plus the network's ``change``, clamped to the pixel range. With the luminance change the
        channels' mean change goes to every channel, so the differences between channels -- the hues -- stay."""
        if self.luminance_change:
            change = change.mean(1, keepdim=True)
        smoothed = self.smooth(x)
        out = (self.toned(smoothed) + change).clamp(-1.0, 1.0)
        if not self.outline_radius:
            return out
        units = (smoothed + 1) * 50  # Winnemoeller et al.'s 0-100
        inner = separable_blur(units, self.outline_inner_rows, self.outline_inner_columns)
        outer = separable_blur(units, self.outline_outer_rows, self.outline_outer_columns)
        return outlined(out, inner - OUTLINE_THRESHOLD * outer)


def bilateral(x: torch.Tensor, radius: int, sigma: float, range_sigma: float) -> torch.Tensor:
    """One separable bilateral pass (Pham and van Vliet 2005): along the rows, then along the columns, each pixel
    becomes the mean of its 2r+1 neighbours weighted by distance and by colour distance (summed over channels).

    Within a level or two of the full (2r+1)^2 window on photos, at 2(2r+1) instead of (2r+1)^2 neighbours (2.2x
    faster in onnxruntime). Accumulated neighbour by neighbour, so memory stays a few pictures' worth at any size
    (a stacked window would hold 2r+1 copies) and it exports to plain ONNX ops.
    """
    for axis in (3, 2):
        length = x.shape[axis]
        padded = F.pad(x, (radius, radius, 0, 0) if axis == 3 else (0, 0, radius, radius), mode="replicate")
        numerator, denominator = torch.zeros_like(x), torch.zeros_like(x[:, :1])
        for d in range(-radius, radius + 1):
            shifted = padded.narrow(axis, radius + d, length)
            colour = ((shifted - x) ** 2).sum(1, keepdim=True)
            weight = torch.exp(colour * (-0.5 / range_sigma**2) - d * d / (2 * sigma**2))
            numerator = numerator + weight * shifted
            denominator = denominator + weight
        x = numerator / denominator
    return x


def gaussian_kernel(sigma: float, radius: int, support: int | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``2 * radius + 1`` taps, zero beyond ``support`` taps from the centre (default:
    the whole length); a single 1 when ``radius`` is 0."""
    if not radius:
        return torch.ones(1)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2)) * (t.abs() <= (radius if support is None else support))
    return kernel / kernel.sum()


def separable_blur(x: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Each channel of ``x`` convolved with its kernel along the rows, then the columns (edges replicated)."""
    r = rows.shape[-1] // 2
    x = F.pad(x, (r, r, r, r), mode="replicate")  # replicate, unlike reflect, accepts any image size
    x = F.conv2d(x, rows.to(x.dtype), groups=rows.shape[0])
    return F.conv2d(x, columns.to(x.dtype), groups=rows.shape[0])


def outlined(drawn: torch.Tensor, difference: torch.Tensor) -> torch.Tensor:
    """``drawn`` (in [-1, 1]) darkened where the per-channel difference of Gaussians is negative, the darkest
    channel's factor to the whole pixel; gradients pass straight through it."""
    darkening = (1 + torch.tanh(OUTLINE_SHARPNESS * difference.clamp(max=0))).amin(1, keepdim=True)
    lined = (drawn + 1) * darkening - 1
    return drawn + (lined - drawn).detach()


def flat_tones(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The lightness (mean of the channels, in [-1, 1]) on a soft staircase of ``levels`` tones, the same change
    added to every channel; gradients pass straight through (module docstring).

    The range is cut into ``levels`` equal bins and each pixel goes to its bin's centre; across a bin edge the
    tone changes along a tanh (Winnemoeller et al.'s form: the nearest edge plus half a step times the tanh)."""
    lightness = x.mean(1, keepdim=True)
    step = 2.0 / levels
    edge = torch.round((lightness + 1) / step) * step - 1  # the nearest bin edge
    toned = edge + step / 2 * torch.tanh((lightness - edge) * (2 * LEVELS_STEEPNESS / step))
    return x + (toned - lightness).detach()


@torch.no_grad()
def zero_last_conv(net: nn.Module) -> nn.Module:
    """Zero the weights and bias of the last (transposed) convolution: the change starts at exactly zero."""
    last = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    last.weight.zero_()
    if last.bias is not None:
        last.bias.zero_()
    return net
