"""cyclegan.models: architectures mirror the original (parameter counts), shapes, gradients, size rules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from cyclegan.config import Config, ConfigError, ModelConfig
from cyclegan.contract.card import GENERATOR_KINDS, CardError, GeneratorCard
from cyclegan.contract.sizes import InputSizeError, check_input_size, pad_centred, size_multiple
from cyclegan.generator_io import card_from_config, with_outlines
from cyclegan.models import build_discriminator, build_generator, generator_from_card, init_weights, make_generator
from cyclegan.models.skip import SkipSource


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# Small base widths keep these fast; the counts test uses the real widths.
SMALL = {
    "resnet_6blocks": (4, 64, 96),
    "resnet_9blocks": (4, 64, 96),
    "unet_128": (2, 128, 256),
    "unet_256": (2, 256, 512),
}


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (ModelConfig(generator="resnet_9blocks", ngf=64, norm="instance"), 11_378_179),
        (ModelConfig(generator="unet_256", ngf=64, norm="instance"), 54_409_603),
    ],
)
def test_generator_parameter_counts_match_original(cfg: ModelConfig, expected: int) -> None:
    assert n_params(build_generator(cfg)) == expected


def test_patchgan_parameter_count_matches_original() -> None:
    assert n_params(build_discriminator(ModelConfig(ndf=64, discriminator="basic", norm="instance"))) == 2_764_737


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("kind", GENERATOR_KINDS)
def test_generator_shapes_non_square(kind: str, norm: str) -> None:
    ngf, h, w = SMALL[kind]
    net = make_generator(kind, ngf=ngf, norm=norm, use_dropout=(norm == "batch"))
    x = torch.rand(2, 3, h, w) * 2 - 1
    for train in (True, False):
        net.train(train)
        with torch.no_grad():
            y = net(x)
        assert y.shape == x.shape
        assert y.abs().max() <= 1  # tanh output
        assert torch.isfinite(y).all()


def test_norm_choice_changes_layers() -> None:
    kinds = {
        norm: {type(m).__name__ for m in make_generator("resnet_6blocks", ngf=4, norm=norm).modules()}
        for norm in ("instance", "batch", "none")
    }
    assert "InstanceNorm2d" in kinds["instance"] and "BatchNorm2d" not in kinds["instance"]
    assert "BatchNorm2d" in kinds["batch"] and "InstanceNorm2d" not in kinds["batch"]
    assert not {"BatchNorm2d", "InstanceNorm2d"} & kinds["none"]


def test_dropout_only_when_requested() -> None:
    for kind in ("resnet_6blocks", "unet_128"):
        with_d = make_generator(kind, ngf=2, use_dropout=True)
        without = make_generator(kind, ngf=2, use_dropout=False)
        assert any(isinstance(m, torch.nn.Dropout) for m in with_d.modules())
        assert not any(isinstance(m, torch.nn.Dropout) for m in without.modules())


@pytest.mark.parametrize(
    "kind, ngf, norm, size",
    [
        ("resnet_6blocks", 4, "instance", (32, 48)),
        ("unet_128", 2, "batch", (128, 128)),
        ("unet_256", 2, "none", (256, 256)),
    ],
)
def test_gradients_reach_every_generator_parameter(kind: str, ngf: int, norm: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = init_weights(make_generator(kind, ngf=ngf, norm=norm), "normal", 0.02).train()
    x = torch.rand(2, 3, *size) * 2 - 1
    net(x).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind, n_layers", [("basic", 3), ("n_layers", 2), ("n_layers", 4), ("pixel", 3)])
def test_discriminator_shapes_and_gradients(kind: str, n_layers: int) -> None:
    cfg = ModelConfig(discriminator=kind, n_layers_d=n_layers, ndf=8, norm="instance", norm_d="batch")
    net = build_discriminator(cfg).train()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # norm_d wins over norm
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    y = net(x)
    if kind == "pixel":
        assert y.shape == (2, 1, 64, 96)
    else:
        # n stride-2 layers then two 4x4 stride-1 convs with padding 1 (each shrinks by 1)
        layers = 3 if kind == "basic" else n_layers
        assert y.shape == (2, 1, 64 // 2**layers - 2, 96 // 2**layers - 2)
    y.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_patchgan_receptive_field_is_70() -> None:
    net = build_discriminator(ModelConfig(ndf=4, norm="none")).eval()
    for p in net.parameters():
        torch.nn.init.constant_(p, 0.01)
    x = torch.zeros(1, 3, 256, 256, requires_grad=True)
    y = net(x)
    y[0, 0, 15, 15].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
    cols = torch.nonzero(x.grad[0].abs().sum(0).sum(0)).flatten()
    assert int(rows.max() - rows.min() + 1) == 70
    assert int(cols.max() - cols.min() + 1) == 70


def test_size_multiple_and_check_input_size() -> None:
    assert [size_multiple(k) for k in ("resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256")] == [4, 4, 128, 256]
    check_input_size("unet_256", 256, 512)
    with pytest.raises(InputSizeError, match="multiples of 256") as info:
        check_input_size("unet_256", 256, 300)
    assert isinstance(info.value, ValueError)
    assert "256x512" in str(info.value)  # suggests the next valid size
    check_input_size("resnet_6blocks", 8, 12)
    with pytest.raises(InputSizeError, match="multiples of 4 and at least 8, got 4x8"):
        check_input_size("resnet_6blocks", 4, 8)
    with pytest.raises(ValueError, match="unknown generator 'resnet_3blocks'"):
        size_multiple("resnet_3blocks")


@pytest.mark.parametrize(
    "kind, size, multiple",
    [("resnet_6blocks", (62, 64), 4), ("resnet_9blocks", (4, 4), 4), ("unet_128", (128, 192), 128)],
)
def test_generator_forward_raises_clear_size_error(kind: str, size: tuple[int, int], multiple: int) -> None:
    net = make_generator(kind, ngf=2)
    with pytest.raises(InputSizeError, match=f"multiples of {multiple}.*, got {size[0]}x{size[1]}"):
        net(torch.zeros(1, 3, *size))


def test_pad_centred_then_crop_gives_the_network_an_allowed_size() -> None:
    x = np.random.default_rng(0).random((2, 3, 37, 50), dtype=np.float32)
    padded, (top, left) = pad_centred(x, 4, 8)
    assert padded.shape == (2, 3, 40, 52) and (top, left) == (1, 1)
    assert np.array_equal(padded[..., top : top + 37, left : left + 50], x)
    # reflect: the row above the image mirrors its second row
    assert np.array_equal(padded[..., 0, 1:51], x[..., 1, :])
    net = make_generator("resnet_6blocks", ngf=2).eval()
    with torch.no_grad():
        y = net(torch.from_numpy(padded)).numpy()[..., top : top + 37, left : left + 50]
    assert y.shape == x.shape
    same, offsets = pad_centred(x[..., :36, :48], 4, 8)
    assert same.shape[-2:] == (36, 48) and offsets == (0, 0)


def test_pad_centred_falls_back_to_edge_for_tiny_images() -> None:
    x = np.random.default_rng(1).random((3, 5, 3), dtype=np.float32)  # pads of 251/253 exceed the sides
    padded, (top, left) = pad_centred(x, 256)
    assert padded.shape == (3, 256, 256) and (top, left) == (125, 126)
    assert np.array_equal(padded[:, 255, left : left + 3], x[:, 4, :])
    assert np.array_equal(padded[:, top : top + 5, left : left + 3], x)


def test_init_weights_distribution_and_errors() -> None:
    net = build_generator(ModelConfig(generator="resnet_6blocks", ngf=16, init_type="normal", init_gain=0.02))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.std().item() - 0.02) < 0.002
    assert all(m.bias is None or torch.all(m.bias == 0) for m in convs)
    with pytest.raises(ValueError, match="unknown init_type"):
        init_weights(net, "uniform")


def test_generator_from_card_matches_config_architecture() -> None:
    cfg = ModelConfig(generator="unet_128", ngf=4, norm="batch", use_dropout=True)
    card = GeneratorCard(generator="unet_128", ngf=4, norm="batch", use_dropout=True)
    built, from_card = build_generator(cfg), generator_from_card(card)
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in from_card.state_dict().items()
    }
    from_card.load_state_dict(built.state_dict())  # strict by default


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_128"])
def test_resize_upsampling_draws_no_checkerboard_where_deconv_does(kind: str) -> None:
    """The stride-2 signature: neighbouring pixels differ more than pixels two apart. A transposed convolution's
    uneven kernel overlap prints it on a flat picture whatever its weights (Odena et al. 2016); resize does not."""
    ratios: dict[str, list[float]] = {"deconv": [], "resize": []}
    for upsample, values in ratios.items():
        for seed in range(3):
            torch.manual_seed(seed)
            net = make_generator(kind, ngf=8, norm="instance", upsample=upsample).eval()
            with torch.no_grad():
                y = net(torch.zeros(1, 3, 128, 128))[0]
            neighbours = (y[:, 1:] - y[:, :-1]).abs().mean()
            two_apart = (y[:, 2:] - y[:, :-2]).abs().mean()
            values.append(float(neighbours / two_apart))
            kinds = {type(m).__name__ for m in net.modules()}
            assert ("ConvTranspose2d" in kinds) == (upsample == "deconv")
    assert max(ratios["resize"]) < 0.9 and np.mean(ratios["deconv"]) > 1.1, ratios


def test_resize_upsampling_is_carried_by_the_card() -> None:
    cfg = Config(model=ModelConfig(generator="unet_128", ngf=4, upsample="resize"))
    card = card_from_config(cfg, "A2B")
    assert card.upsample == "resize"
    rebuilt = generator_from_card(card)
    assert rebuilt.state_dict().keys() == build_generator(cfg.model).state_dict().keys()


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_128"])
def test_global_skip_starts_at_the_identity_and_learns_a_change(kind: str) -> None:
    cfg = ModelConfig(generator=kind, ngf=4, upsample="resize", global_skip=True)
    net = build_generator(cfg)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    assert torch.equal(net(x), x)  # the last convolution starts at zero: the photo comes back unchanged
    (net(x) - x.flip(0)).abs().mean().backward()
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0  # and it can learn from there
    card = card_from_config(Config(model=cfg), "A2B")
    assert card.global_skip and generator_from_card(card).global_skip
    with pytest.raises(ConfigError, match="model.global_skip needs model.input_nc == model.output_nc"):
        ModelConfig(generator=kind, output_nc=1, global_skip=True).validate()


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_128"])
def test_blurred_skip_adds_the_change_to_a_blur_of_the_input(kind: str) -> None:
    cfg = ModelConfig(generator=kind, ngf=4, upsample="resize", global_skip=True, skip_blur=2.0)
    cfg.validate()
    net = build_generator(cfg)
    with torch.no_grad():
        [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.zero_()  # isolate the skip
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    x[..., :, 64:] = 0.25  # a flat area, then a sharp edge
    out = net(x)
    assert out.shape == x.shape
    assert torch.allclose(out[..., 20:100, 80:], torch.full_like(out[..., 20:100, 80:], 0.25), atol=1e-6)  # flat stays
    assert (out - x)[..., 20:100, 54:74].abs().max() > 0.05  # the edge is softened: no detail through the skip
    assert (out - x).abs().mean() < (x - x.mean()).abs().mean()  # ...but the colours are the input's
    card = card_from_config(Config(model=cfg), "A2B")
    assert card.skip_blur == 2.0
    rebuilt = generator_from_card(card)
    rebuilt.load_state_dict(net.state_dict())  # the kernel is not a weight: the saved keys are unchanged
    assert torch.equal(rebuilt(x), out)


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_128"])
def test_bilateral_skip_flattens_texture_and_keeps_edges(kind: str) -> None:
    cfg = ModelConfig(
        generator=kind, ngf=4, upsample="resize", global_skip=True, skip_blur=2.0, skip_filter="bilateral"
    )
    cfg.validate()
    net = build_generator(cfg)
    with torch.no_grad():
        [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.zero_()  # isolate the skip
        [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].bias.zero_()
    generator = torch.Generator().manual_seed(0)
    x = torch.full((1, 3, 128, 128), -0.5)
    x[..., :, 64:] = 0.5  # two flat areas with a sharp edge between them...
    x = x + 0.05 * torch.randn(x.shape, generator=generator)  # ...under a fine texture
    out = net(x)
    gaussian = SkipSource(3, 2.0)(x)  # a Gaussian blur of the same sigma, for comparison
    left, right = out[..., 8:120, 8:56], out[..., 8:120, 72:120]
    assert left.std() < 0.2 * x[..., 8:120, 8:56].std() and right.std() < 0.2 * x[..., 8:120, 72:120].std()
    edge = (out[..., 63] - out[..., 64]).abs().mean()  # the step across the edge stays nearly whole...
    assert edge > 0.8 and edge > 3 * (gaussian[..., 63] - gaussian[..., 64]).abs().mean()  # ...a blur spreads it
    card = card_from_config(Config(model=cfg), "A2B")
    assert card.skip_filter == "bilateral"
    rebuilt = generator_from_card(card)
    rebuilt.load_state_dict(net.state_dict())  # no weights of its own: the saved keys are unchanged
    assert torch.equal(rebuilt(x), out)


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_128"])
def test_luminance_change_keeps_the_skips_hues(kind: str) -> None:
    """model.skip_change=luminance: every channel of the output moves by the same amount from the skip (until the
    clamp), so R-G and B-G are the skip's; the same weights with skip_change=rgb move the channels apart."""
    cfg = ModelConfig(
        generator=kind, ngf=4, upsample="resize", global_skip=True, skip_blur=2.0, skip_change="luminance"
    )
    cfg.validate()
    torch.manual_seed(0)
    net = build_generator(cfg)
    x = torch.rand(1, 3, 128, 128) * 1.2 - 0.6  # away from the clamp
    with torch.no_grad():
        out, source = net(x), net.skip_source(x)
        change = out - source
        free = replace(cfg, skip_change="rgb")
        rgb = generator_from_card(card_from_config(Config(model=free), "A2B"))
        rgb.load_state_dict(net.state_dict())  # the same weights: only the rule that adds them differs
        rgb_change = rgb(x) - source
    unclamped = (out.abs() < 0.999).all(1, keepdim=True).expand_as(out)
    assert unclamped.float().mean() > 0.9 and change.abs().max() > 1e-3
    spread = change.max(1).values - change.min(1).values
    assert spread[unclamped[:, 0]].max() < 1e-5  # one change for all three channels
    assert (rgb_change.max(1).values - rgb_change.min(1).values).max() > 1e-3
    card = card_from_config(Config(model=cfg), "A2B")
    assert card.skip_change == "luminance"
    rebuilt = generator_from_card(card)
    rebuilt.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(x), out)


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_128"])
def test_skip_levels_tone_the_lightness_and_pass_gradients_through(kind: str) -> None:
    """model.skip_levels: a smooth ramp becomes flat tones (the staircase's levels, soft only near a boundary),
    the hues stay, and the gradient through the skip is the identity's (straight-through)."""
    levels = 4  # bins of width 0.5, tones at their centres
    cfg = ModelConfig(
        generator=kind, ngf=4, upsample="resize", global_skip=True, skip_blur=1.0, skip_change="luminance",
        skip_levels=levels,
    )  # fmt: skip
    cfg.validate()
    net = build_generator(cfg)
    ramp = torch.linspace(-0.9, 0.9, 128).expand(1, 1, 128, 128)  # a horizontal ramp of lightness...
    hue = torch.tensor([0.05, 0.0, -0.05]).view(1, 3, 1, 1)
    x = (ramp + hue).requires_grad_()  # ...with a warm tint
    toned = net.skip_source(x)
    lightness = toned.mean(1)[0, 64]
    tones = torch.tensor([-0.75, -0.25, 0.25, 0.75])
    distance, nearest = (lightness[:, None] - tones).abs().min(1)
    assert (distance < 0.02).float().mean() > 0.45  # half the ramp sits on a tone (without levels: 0.1)...
    assert torch.unique(nearest[distance < 0.02]).numel() == 4  # ...on each of the four
    assert (distance > 0.1).any()  # and the steps are soft where the ramp crosses a boundary
    assert torch.allclose(toned - toned.mean(1, keepdim=True), x - x.mean(1, keepdim=True), atol=1e-5)  # hues kept
    weights = torch.rand(toned.shape, generator=torch.Generator().manual_seed(0))
    (toned * weights).sum().backward()
    smooth_x = x.detach().clone().requires_grad_()
    smooth = SkipSource(3, 1.0, change="luminance")(smooth_x)
    (smooth * weights).sum().backward()
    assert torch.allclose(x.grad, smooth_x.grad)  # straight through: the blur's gradient alone
    smooth = smooth.mean(1)[0, 64]
    assert ((smooth[:, None] - tones).abs().min(1).values < 0.02).float().mean() < 0.15
    card = card_from_config(Config(model=cfg), "A2B")
    assert card.skip_levels == levels
    rebuilt = generator_from_card(card)
    rebuilt.load_state_dict(net.state_dict())  # no weights of its own: the saved keys are unchanged
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))
    with pytest.raises(ValueError, match="levels must be 0"):
        SkipSource(3, 1.0, levels=1)


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_128"])
def test_outlines_darken_colour_edges_only_and_pass_gradients_through(kind: str) -> None:
    """The card's outlines (set at export): a dark line along a change of hue at the same lightness and along a
    change of lightness, none inside flat areas, the network's output otherwise unchanged; straight-through
    gradients."""
    cfg = ModelConfig(
        generator=kind, ngf=4, upsample="resize", global_skip=True, skip_blur=1.0, skip_filter="bilateral",
        skip_change="luminance",
    )  # fmt: skip
    net = build_generator(cfg)
    with torch.no_grad():  # a network that changes something, so the lines are drawn on its output
        [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.normal_(0, 0.05)
    net, card = with_outlines(net, card_from_config(Config(model=cfg), "A2B"), 1.0)
    assert card.outlines == 1.0 and generator_from_card(card).skip_source.outline_radius > 0
    plain, _ = with_outlines(net, card, 0.0)
    x = torch.zeros(1, 3, 128, 128)
    x[:, :, :, :64] = torch.tensor([0.4, -0.2, -0.2]).view(1, 3, 1, 1)  # red on the left...
    x[:, :, :, 64:] = torch.tensor([-0.2, -0.2, 0.4]).view(1, 3, 1, 1)  # ...blue on the right, the same lightness
    x[:, :, 96:, :] = 0.8  # and a light band along the bottom
    x.requires_grad_()
    lined = net(x)
    darkening = (lined - plain(x)).mean(1)[0].detach()  # what the outlines did to each pixel's lightness
    assert darkening[40, 60:68].min() < -0.3  # a dark line along the hue edge...
    assert darkening[90:100, 30].min() < -0.3  # ...and along the lightness edge
    flat = torch.ones_like(darkening, dtype=torch.bool)
    flat[:, 56:72] = False
    flat[88:104, :] = False
    assert darkening[flat].abs().max() < 1e-3  # nothing inside the flat areas
    weights = torch.rand(lined.shape, generator=torch.Generator().manual_seed(0))
    (lined * weights).sum().backward()
    plain_x = x.detach().clone().requires_grad_()
    (plain(plain_x) * weights).sum().backward()
    assert torch.allclose(x.grad, plain_x.grad, atol=1e-5)  # straight through: the network's gradient alone
    with pytest.raises(CardError, match="outlines needs global_skip"):
        with_outlines(build_generator(ModelConfig(generator=kind, ngf=4)), card_from_config(Config(), "A2B"), 1.0)
    with pytest.raises(ValueError, match="outline sigma must be 0"):
        SkipSource(3, 1.0, outlines=float("nan"))


def test_bilateral_gaussian_skip_is_the_blur_of_the_bilateral_filter() -> None:
    x = torch.rand(1, 3, 48, 40) * 2 - 1
    x[..., :, 20:] += 0.5  # an edge for the bilateral filter to keep
    both = SkipSource(3, 2.0, "bilateral_gaussian")(x)
    assert torch.allclose(both, SkipSource(3, 2.0)(SkipSource(3, 2.0, "bilateral")(x)), atol=1e-6)
    assert not torch.allclose(both, SkipSource(3, 2.0)(x), atol=1e-3)
    with pytest.raises(ValueError, match="needs a spatial sigma"):
        SkipSource(3, 0.0, "bilateral_gaussian")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"skip_blur": 2.0}, "model.skip_blur needs model.global_skip=true"),
        ({"global_skip": True, "skip_blur": -1.0}, "model.skip_blur must be a number from 0 to 16"),
        ({"global_skip": True, "skip_blur": float("nan")}, "model.skip_blur must be a number from 0 to 16"),
        ({"global_skip": True, "skip_blur": 17.0}, "model.skip_blur must be a number from 0 to 16"),
        ({"global_skip": True, "skip_filter": "bilateral"}, "model.skip_filter=bilateral needs model.skip_blur > 0"),
        ({"global_skip": True, "skip_filter": "bilateral_gaussian"}, "bilateral_gaussian needs model.skip_blur > 0"),
        ({"skip_change": "luminance"}, "model.skip_change=luminance needs model.global_skip=true"),
        ({"skip_levels": 8}, "model.skip_levels needs model.global_skip=true"),
        ({"global_skip": True, "skip_levels": 1}, "model.skip_levels must be 0 .off. or a number of tones from 2"),
        ({"global_skip": True, "skip_levels": -2}, "model.skip_levels must be 0"),
        ({"global_skip": True, "skip_levels": 65}, "from 2 to 64"),
    ],
)
def test_skip_blur_is_validated(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelConfig(generator="resnet_6blocks", **overrides).validate()
