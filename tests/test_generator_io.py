"""cyclegan.generator_io: safetensors round trip with the card in the header, atomic writes, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import cyclegan
from cyclegan.config import load_config
from cyclegan.contract.card import CardError, GeneratorCard
from cyclegan.contract.files import OutputError
from cyclegan.generator_io import GeneratorFileError, card_from_config, load_generator, read_card, save_generator
from cyclegan.models import build_generator


@pytest.fixture()
def cfg():
    return load_config(
        None,
        [
            "name=run7",
            "model.generator=resnet_6blocks",
            "model.ngf=4",
            "model.norm=batch",
            "model.use_dropout=true",
            "data.domain_a=photo",
            "data.domain_b=cartoon",
            "data.load_size=80",
            "data.crop_size=64",
        ],
    )


def test_card_from_config(cfg) -> None:
    a2b = card_from_config(cfg, "A2B", step=1200, epoch=3, ema=True)
    assert (a2b.generator, a2b.ngf, a2b.norm, a2b.use_dropout) == ("resnet_6blocks", 4, "batch", True)
    assert (a2b.direction, a2b.source_domain, a2b.target_domain) == ("A2B", "photo", "cartoon")
    assert (a2b.step, a2b.epoch, a2b.ema, a2b.run_name) == (1200, 3, True, "run7")
    assert a2b.size_multiple == 4 and a2b.train_size == 64
    assert a2b.mean == (0.5, 0.5, 0.5) and a2b.std == (0.5, 0.5, 0.5)
    assert a2b.project_version == cyclegan.__version__
    b2a = card_from_config(cfg, "B2A")
    assert (b2a.direction, b2a.source_domain, b2a.target_domain) == ("B2A", "cartoon", "photo")
    with pytest.raises(ValueError, match="direction must be one of A2B, B2A"):
        card_from_config(cfg, "AtoB")  # type: ignore[arg-type]


def test_card_multiple_for_unet() -> None:
    assert card_from_config(load_config(None, ["model.generator=unet_128"]), "A2B").size_multiple == 128


def test_round_trip_weights_card_and_atomicity(cfg, tmp_path) -> None:
    torch.manual_seed(0)
    net = build_generator(cfg.model).train()
    net(torch.rand(2, 3, 32, 32))  # move the batch-norm running stats away from their defaults
    card = card_from_config(cfg, "A2B", step=5, epoch=1)
    path = save_generator(tmp_path / "generators" / "A2B.safetensors", net, card)
    assert sorted(p.name for p in path.parent.iterdir()) == ["A2B.safetensors"]  # no temp file left
    with safe_open(str(path), framework="pt") as fh:
        assert json.loads(fh.metadata()["cyclegan"]) == json.loads(card.to_json())

    loaded, loaded_card = load_generator(path)
    assert loaded_card == card and read_card(path) == card
    assert not loaded.training
    expected = net.state_dict()
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))

    # overwrite in place: still exactly one file, now with the new card
    save_generator(path, net, card_from_config(cfg, "A2B", step=6))
    assert read_card(path).step == 6
    assert len(list(path.parent.iterdir())) == 1


def test_failed_save_leaves_no_temp_and_keeps_old_file(cfg, tmp_path) -> None:
    net = build_generator(cfg.model)
    path = save_generator(tmp_path / "g.safetensors", net, card_from_config(cfg, "A2B", step=1))
    # The final os.replace fails (target is a non-empty directory) after the temp file was written.
    target = tmp_path / "taken.safetensors"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):  # one line for the CLIs, no temporary file left
        save_generator(target, net, card_from_config(cfg, "A2B", step=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors", "taken.safetensors"]
    assert read_card(path).step == 1


def test_shared_tensors_are_saved(tmp_path) -> None:
    net = build_generator(load_config(None, ["model.generator=resnet_6blocks", "model.ngf=2"]).model)
    net.register_buffer("tied", net.model[1].weight.data)  # shares storage with a conv weight
    card = GeneratorCard(generator="resnet_6blocks", ngf=2)
    path = save_generator(tmp_path / "g.safetensors", net, card)
    with safe_open(str(path), framework="pt") as fh:
        assert torch.equal(fh.get_tensor("tied"), net.model[1].weight.detach())


def test_torch_compile_wrapper_names_are_stripped(tmp_path) -> None:
    cfg = load_config(None, ["model.generator=resnet_6blocks", "model.ngf=2"])
    net = build_generator(cfg.model)

    class Wrapper(torch.nn.Module):  # what torch.compile returns: the module under _orig_mod
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    path = save_generator(tmp_path / "g.safetensors", Wrapper(net), card_from_config(cfg, "A2B"))
    loaded, _ = load_generator(path)
    assert loaded.state_dict().keys() == net.state_dict().keys()


def test_errors_are_clear(tmp_path, cfg) -> None:
    with pytest.raises(GeneratorFileError, match="generator file not found"):
        read_card(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(GeneratorFileError, match="not a readable .safetensors"):
        load_generator(junk)
    no_card = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(no_card))
    with pytest.raises(CardError, match="no 'cyclegan' metadata"):
        read_card(no_card)
    wrong = tmp_path / "wrong.safetensors"
    save_generator(wrong, build_generator(cfg.model), GeneratorCard(generator="resnet_9blocks", ngf=4, norm="batch"))
    with pytest.raises(GeneratorFileError, match="do not match the architecture"):
        load_generator(wrong)
