"""``cyclegan import-pth`` on state dicts written in the reference's layout (junyanz/pytorch-CycleGAN-and-pix2pix).

The files are made here with ``torch.save(net.state_dict())``, as the reference saves ``latest_net_G_A.pth``:
plain, ``module.``-prefixed (a DataParallel-wrapped net) and with the InstanceNorm running statistics that
checkpoints of PyTorch < 0.4 carry.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cyclegan.cli import main
from cyclegan.generator_io import load_generator, read_card
from cyclegan.import_pth import ImportPthError, import_pth
from cyclegan.models import init_weights, make_generator

NORM_LAYERS_RESNET9 = [2, 5, 8, 20, 23]  # InstanceNorm layers outside the residual blocks (reference indices)


def reference_state_dict(kind: str = "resnet_9blocks", ngf: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = init_weights(make_generator(kind, ngf=ngf, norm="instance"), "normal", 0.02)
    state = net.state_dict()
    if kind == "resnet_9blocks":  # the reference's names: 7x7 conv, blocks from index 10, last conv 26
        assert {
            "model.1.weight",
            "model.10.conv_block.1.weight",
            "model.18.conv_block.5.bias",
            "model.26.weight",
        } <= set(state)
    return state


def with_old_instance_norm_stats(state: dict[str, torch.Tensor], ngf: int) -> dict[str, torch.Tensor]:
    """Add the running_mean/var (and num_batches_tracked) buffers PyTorch < 0.4 saved for InstanceNorm layers."""
    state = dict(state)
    channels = {2: ngf, 5: 2 * ngf, 8: 4 * ngf, 20: 2 * ngf, 23: ngf}
    for index, c in channels.items():
        state[f"model.{index}.running_mean"] = torch.zeros(c)
        state[f"model.{index}.running_var"] = torch.ones(c)
        state[f"model.{index}.num_batches_tracked"] = torch.tensor(0)
    for block in range(10, 19):
        for layer in (2, 6):
            state[f"model.{block}.conv_block.{layer}.running_mean"] = torch.zeros(4 * ngf)
            state[f"model.{block}.conv_block.{layer}.running_var"] = torch.ones(4 * ngf)
    return state


def same_outputs(
    src_state: dict[str, torch.Tensor], imported: Path, kind: str = "resnet_9blocks", ngf: int = 8
) -> None:
    reference = make_generator(kind, ngf=ngf, norm="instance")
    reference.load_state_dict(src_state)
    module, _ = load_generator(imported)
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(reference.eval()(x), module(x))


def test_plain_state_dict_becomes_a_generator_with_a_card(tmp_path: Path) -> None:
    state = reference_state_dict()
    torch.save(state, tmp_path / "style_monet.pth")
    out = tmp_path / "style_monet_A2B.safetensors"
    card, dropped = import_pth(
        tmp_path / "style_monet.pth",
        out,
        generator="resnet_9blocks",
        norm="instance",
        name="style_monet",
        direction="A2B",
        domains=("photo", "monet"),
        ngf=8,
    )
    assert dropped == 0
    same_outputs(state, out)
    saved = read_card(out)
    assert saved == card
    assert (saved.source_domain, saved.target_domain, saved.direction) == ("photo", "monet", "A2B")
    assert (saved.generator, saved.ngf, saved.norm, saved.size_multiple) == ("resnet_9blocks", 8, "instance", 4)
    assert saved.run_name == "style_monet" and saved.extra["imported_from"] == "style_monet.pth"
    assert len(saved.extra["imported_sha256"]) == 64


def test_module_prefix_and_old_instance_norm_stats_are_handled(tmp_path: Path) -> None:
    state = reference_state_dict(seed=1)
    old = {f"module.{k}": v for k, v in with_old_instance_norm_stats(state, 8).items()}
    torch.save(old, tmp_path / "latest_net_G_A.pth")
    out = tmp_path / "zebra.safetensors"
    card, dropped = import_pth(
        tmp_path / "latest_net_G_A.pth",
        out,
        generator="resnet_9blocks",
        norm="instance",
        name="horse2zebra",
        direction="B2A",
        domains=("horse", "zebra"),
        ngf=8,
    )
    assert dropped == 5 * 3 + 9 * 2 * 2
    assert (card.source_domain, card.target_domain) == ("zebra", "horse")
    same_outputs(state, out)


def _import(src: Path, tmp_path: Path, **kwargs: object) -> None:
    options = dict(generator="resnet_9blocks", norm="instance", name="x", direction="A2B", domains=("a", "b"), ngf=8)
    options.update(kwargs)
    import_pth(src, tmp_path / "x.safetensors", **options)  # type: ignore[arg-type]


def test_another_architecture_is_refused_with_the_differences(tmp_path: Path) -> None:
    torch.save(reference_state_dict("resnet_6blocks"), tmp_path / "six.pth")
    with pytest.raises(ImportPthError, match=r"not a resnet_9blocks .*missing model\.16\..*try --generator resnet_6"):
        _import(tmp_path / "six.pth", tmp_path)
    torch.save(reference_state_dict(ngf=16), tmp_path / "wide.pth")
    with pytest.raises(
        ImportPthError, match=r"shapes differ .*model\.1\.weight \(16, 3, 7, 7\) vs \(8, 3, 7, 7\).*--ngf 16"
    ):
        _import(tmp_path / "wide.pth", tmp_path)
    with pytest.raises(ImportPthError, match=r"try --dropout"):
        torch.save(make_generator("resnet_9blocks", ngf=8, use_dropout=True).state_dict(), tmp_path / "drop.pth")
        _import(tmp_path / "drop.pth", tmp_path)
    torch.save(make_generator("unet_256", ngf=8).state_dict(), tmp_path / "unet.pth")
    with pytest.raises(ImportPthError, match=r"looks like a U-Net"):
        _import(tmp_path / "unet.pth", tmp_path)
    assert not (tmp_path / "x.safetensors").exists()


def test_files_that_are_not_state_dicts_are_refused(tmp_path: Path) -> None:
    cases = {
        "list.pth": ([torch.zeros(1)], r"holds a list, not a state dict"),
        "training.pth": ({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, r"state_dict, epoch are not tensors"),
    }
    for name, (obj, message) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(ImportPthError, match=message):
            _import(tmp_path / name, tmp_path)
    (tmp_path / "noise.pth").write_bytes(os.urandom(256))
    with pytest.raises(ImportPthError, match="not a PyTorch checkpoint"):
        _import(tmp_path / "noise.pth", tmp_path)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ImportPthError, match="not a PyTorch checkpoint"):
        _import(tmp_path / "empty.pth", tmp_path)
    with pytest.raises(ImportPthError, match="no such file"):
        _import(tmp_path / "absent.pth", tmp_path)


class _Trap:
    """Unpickling this runs os.mkdir(path): the import must refuse before any such code runs."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickles_that_need_code_are_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"model.1.weight": torch.zeros(1), "payload": _Trap(marker)}, tmp_path / "trap.pth")
    with pytest.raises(ImportPthError, match=r"needs Python code to load \(posix\.mkdir\); refusing"):
        _import(tmp_path / "trap.pth", tmp_path)
    assert not marker.exists()
    torch.save(make_generator("resnet_6blocks", ngf=4), tmp_path / "whole_model.pth")  # torch.save(model)
    with pytest.raises(
        ImportPthError, match=r"needs Python code to load \(cyclegan\.models\.resnet\.ResnetGenerator\)"
    ):
        _import(tmp_path / "whole_model.pth", tmp_path)


def test_cli_import_then_export(tmp_path: Path) -> None:
    state = reference_state_dict("resnet_6blocks", ngf=4)
    torch.save(state, tmp_path / "tiny.pth")
    args = ["import-pth", str(tmp_path / "tiny.pth"), "--generator", "resnet_6blocks", "--ngf", "4"]
    args += ["--name", "tiny", "--domains", "photo,ink"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "tiny_A2B.safetensors"
    assert f"wrote {out}: photo -> ink" in result.output and "cyclegan export" in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    bad = CliRunner().invoke(main, [*args[:-2], "--domains", "photo", "--overwrite"])
    assert bad.exit_code == 2 and "A,B" in bad.output

    exported = CliRunner().invoke(main, ["export", str(out), "--out", str(tmp_path / "models"), "--bench-size", "0"])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "models" / "tiny_A2B.onnx").is_file()
