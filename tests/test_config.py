"""cyclegan.config: every preset loads and round-trips; typos and bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclegan.config import Config, ConfigError, apply_overrides, config_from_dict, load_config
from cyclegan.models import build_discriminator, build_generator

PRESETS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_presets_exist() -> None:
    assert {p.stem for p in PRESETS} >= {"resnet9", "resnet9_batchnorm", "tiny_cpu", "unet256"}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_round_trips_through_yaml(preset: Path, tmp_path: Path) -> None:
    cfg = load_config(preset)
    assert cfg.name == preset.stem
    cfg.save(tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == cfg
    assert again.to_yaml() == cfg.to_yaml()


def test_tiny_preset_builds_small_networks() -> None:
    cfg = load_config(PRESETS[[p.stem for p in PRESETS].index("tiny_cpu")])
    g, d = build_generator(cfg.model), build_discriminator(cfg.model)
    assert sum(p.numel() for p in g.parameters()) < 1_000_000
    assert sum(p.numel() for p in d.parameters()) < 1_000_000


def test_defaults_are_the_paper_settings() -> None:
    cfg = load_config(None)
    assert cfg == Config().validate()
    assert (cfg.model.generator, cfg.loss.gan_mode, cfg.optim.lr, cfg.optim.total_epochs) == (
        "resnet_9blocks",
        "lsgan",
        2e-4,
        200,
    )


def test_overrides_are_typed() -> None:
    cfg = load_config(
        None,
        [
            "model.ngf=32",
            "optim.lr=0.001",
            "train.ema_decay=0.999",
            "data.max_dataset_size=null",
            "model.use_dropout=true",
            "optim.warmup_epochs=1",
        ],
    )
    assert cfg.model.ngf == 32 and cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.train.ema_decay == pytest.approx(0.999) and cfg.data.max_dataset_size is None
    assert cfg.model.use_dropout is True and cfg.optim.warmup_epochs == 1.0


def test_exponent_without_dot_is_a_number() -> None:
    """PyYAML (YAML 1.1) reads 1e-3 as a string; float fields accept it, other strings stay errors."""
    assert load_config(None, ["optim.lr=1e-3"]).optim.lr == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        load_config(None, ["optim.lr=fast"])
    for value in ("nan", ".nan", ".inf", "-.inf", "1e999"):  # strings, YAML infinities/NaN, overflow
        with pytest.raises(ConfigError, match="optim.lr: expected a finite number"):
            load_config(None, [f"optim.lr={value}"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.generatr=unet_256"], "unknown key 'model.generatr' .*did you mean 'model.generator'"),
        (["modle.ngf=8"], "unknown key 'modle'"),
        (["model.generator=resnet_3blocks"], "model.generator: expected one of"),
        (["model.ngf=abc"], "model.ngf: expected an integer"),
        (["model.ngf=2.5"], "model.ngf: expected an integer"),
        (["model.ngf=0"], "model.ngf must be > 0"),
        (["model.use_dropout=maybe"], "model.use_dropout: expected true/false"),
        (["optim.lr=-1"], "optim.lr must be > 0"),
        (["optim.beta1=1.0"], r"optim.beta1 must be in \[0, 1\)"),
        (["optim.n_epochs=0", "optim.n_epochs_decay=0"], "not both 0"),
        (["data.crop_size=300"], r"data.crop_size \(300\) must be <= data.load_size"),
        (["train.ema_decay=1.5"], "train.ema_decay must be in"),
        (["train.ddp_timeout_s=0"], "train.ddp_timeout_s must be > 0"),
        (["model.upsample=bilinear"], "model.upsample: expected one of"),
        (["train.diffaugment=color,blur"], r"train.diffaugment: unknown transform\(s\) \['blur'\]"),
        (["train.diffaugment="], "train.diffaugment: unknown transform"),
        (["train.identity_warmup_steps=-1"], "train.identity_warmup_steps must be >= 0"),
        (["loss.gan_mode=wgan"], "loss.gan_mode: expected one of"),
        (["loss.lambda_change_tv=-0.5", "model.global_skip=true"], "loss.lambda_change_tv must be >= 0"),
        (["loss.lambda_change_tv=nan", "model.global_skip=true"], "loss.lambda_change_tv: expected a finite number"),
        (["loss.lambda_change_tv=0.5"], "loss.lambda_change_tv needs model.global_skip=true"),
        (["model.d_a_input=grey"], "model.d_a_input: expected one of"),
        (["model.n_layers_d=1"], r"model.n_layers_d=1 is used only with model.discriminator=n_layers"),
        (["model.d_a_input=luminance", "model.output_nc=1"], r"model.d_a_input=luminance needs RGB pictures"),
        (["model.norm=null"], "model.norm: expected one of .*got None"),
        (["train.seed=null"], "train.seed: expected an integer"),
        (["no_equals_sign"], "not of the form section.key=value"),
        (["model..ngf=3"], "empty key"),
        (["name=x", "name.sub=1"], "'name' is not a section"),
        (["name.sub=1"], "name: expected a string"),
    ],
)
def test_bad_values_and_keys_are_rejected(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_unknown_key_in_yaml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  ngf: 8\n  n_blocks: 9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key 'model.n_blocks'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_apply_overrides_on_raw_dict_and_from_dict() -> None:
    raw = apply_overrides({"model": {"ngf": 8}}, ["model.ndf=16", "name=x"])
    assert raw == {"model": {"ngf": 8, "ndf": 16}, "name": "x"}
    cfg = config_from_dict(raw)
    assert (cfg.model.ngf, cfg.model.ndf, cfg.name) == (8, 16, "x")
    with pytest.raises(ConfigError, match="model: expected a mapping"):
        config_from_dict({"model": 3})


def test_bare_no_is_the_string_no_for_choices_that_have_it() -> None:
    """YAML 1.1 parses `no` as false; mixed_precision offers "no" as a choice, so it means that."""
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="model.norm: expected one of"):
        load_config(None, ["model.norm=no"])
