"""int8 that keeps the picture: recipe ladder, PSNR floor (refusal / --force), card fields read by serving.

The generator is trained briefly (a colour permutation of synthetic scenes, real Adam steps): random weights
make a noise amplifier that says little about int8 on trained weights.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from cyclegan.config import Config, DataConfig, ModelConfig
from cyclegan.contract.card import CardError, GeneratorCard
from cyclegan.generator_io import card_from_config, save_generator
from cyclegan.models import build_generator
from export import quantize, verify
from export.cli import export as export_command
from export.pipeline import output_path
from serve.cli import cli as serve_cli
from serve.stylizer import Stylizer

NAME = "int8 test"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a briefly trained ResNet-6 ngf 8 .safetensors, a folder of source-domain images)."""
    from synthetic import random_scene, write_png

    root = tmp_path_factory.mktemp("int8")
    rng = np.random.default_rng(0)
    scenes = [random_scene(rng, 48) for _ in range(10)]
    for i, scene in enumerate(scenes):
        write_png(root / "calib" / f"c{i:02d}.png", scene)
    cfg = Config(name=NAME, model=ModelConfig(generator="resnet_6blocks", ngf=8), data=DataConfig())
    torch.manual_seed(0)
    net = build_generator(cfg.model)
    x = torch.from_numpy(np.stack(scenes)).permute(0, 3, 1, 2).float() / 127.5 - 1
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread, and no spinning against a loaded machine's other jobs
    for step in range(60):
        batch = x[step % 5 * 2 : step % 5 * 2 + 2]
        loss = torch.nn.functional.l1_loss(net(batch), batch[:, [2, 0, 1]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    source = root / "G.safetensors"
    save_generator(source, net.eval(), card_from_config(cfg, "A2B", step=60, epoch=1))
    return source, root / "calib"


def _export(source: Path, calib: Path, out: Path, *args: str):
    cli_args = [str(source), "--out", str(out), "--precision", "int8", "--calibration-dir", str(calib)]
    cli_args += ["--exporter", "torchscript", "--bench-size", "32", *args]
    return CliRunner().invoke(export_command, cli_args)


def test_floor_refuses_without_force_and_writes_nothing(trained, tmp_path: Path) -> None:
    source, calib = trained
    result = _export(source, calib, tmp_path / "out", "--int8-min-psnr", "150")
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "int8 PSNR" in error[0] and "below the floor of 150 dB" in error[0], result.output
    assert "--force" in error[0]
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_force_writes_the_best_recipe_with_a_warning_and_serve_shows_the_card(trained, tmp_path: Path) -> None:
    source, calib = trained
    out = tmp_path / "out"
    result = _export(source, calib, out, "--int8-min-psnr", "150", "--force")
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "below the floor of 150 dB" in result.output
    path = output_path(out, NAME, "A2B", "int8")
    card = Stylizer(path).card
    tried = [float(v) for v in re.findall(r"recipe \S+: PSNR ([\d.]+) dB", result.output)]
    assert len(tried) >= 3  # the whole ladder was tried, the best one written
    assert card.psnr_vs_fp32_db == pytest.approx(max(tried), abs=0.06)
    assert card.precision == "int8" and card.quant_recipe in quantize.RECIPE_NAMES
    assert card.speed_vs_fp32 and card.speed_vs_fp32 > 0 and card.bench_side == 32 and card.bench_cpu
    assert card.float_nodes  # the best recipe keeps some convolutions in float
    graph_convs = {n.name: n for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "ConvTranspose")}
    assert set(card.float_nodes) <= set(graph_convs)

    # serving shows what the export measured
    photo = tmp_path / "photo.png"
    photo.write_bytes(next(calib.iterdir()).read_bytes())
    shown = CliRunner().invoke(serve_cli, ["stylize", str(path), str(photo), "--out", str(tmp_path / "st")])
    assert shown.exit_code == 0, shown.output
    assert f"PSNR {card.psnr_vs_fp32_db:.1f} dB vs fp32" in shown.output and card.quant_recipe in shown.output


def test_first_recipe_reaching_the_floor_is_chosen(trained, tmp_path: Path) -> None:
    source, calib = trained
    from cyclegan.generator_io import load_generator
    from export.onnx_export import to_onnx_proto

    module, card = load_generator(source, device="cpu")
    proto, _ = to_onnx_proto(module, card, exporter="torchscript")
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(proto, str(fp32))
    files = quantize.list_calibration_images(calib, None)
    cal_files, held = quantize.split_held_out(files, 32, 4)
    assert held and not set(held) & set(cal_files)  # PSNR on images calibration did not see
    cal = quantize.load_calibration_inputs(cal_files, card)
    ev = quantize.load_calibration_inputs(held, card)
    reference_session = verify.make_session(fp32)
    refs = [verify.run_session(reference_session, x) for x in ev]

    def psnr(model: onnx.ModelProto) -> float:
        session = verify.make_session_from(model)
        return verify.psnr_over(refs, [verify.run_session(session, x) for x in ev])

    best, tried = quantize.choose_int8(fp32, cal, psnr, float("inf"))
    assert [t.recipe.name for t in tried][:2] == ["all-convs", "float-ends"]
    assert tried[0].float_convs == []
    roles = quantize.conv_roles(proto)
    first, last = next(iter(roles)), list(roles)[-1]
    assert tried[1].float_convs == [first, last]
    assert best.psnr_db == max(t.psnr_db for t in tried)
    # a floor between the first recipe and the best one: the first recipe that reaches it wins
    floor = max(t.psnr_db for t in tried[1:])
    chosen, tried_again = quantize.choose_int8(fp32, cal, psnr, floor)
    first_ok = next(t for t in tried if t.psnr_db >= floor)
    assert chosen.recipe == first_ok.recipe and len(tried_again) == tried.index(first_ok) + 1
    assert chosen.psnr_db >= 30  # a trained network keeps the picture in int8


def test_card_measurements_are_validated_and_old_cards_still_load() -> None:
    card = GeneratorCard(generator="resnet_6blocks", precision="int8")
    assert card.psnr_vs_fp32_db is None and card.measured == ""
    old = json.loads(card.to_json())
    for key in ("psnr_vs_fp32_db", "speed_vs_fp32", "bench_side", "bench_cpu", "quant_recipe", "float_nodes"):
        del old[key]
    assert GeneratorCard.from_json(json.dumps(old)) == card
    for bad in ({"psnr_vs_fp32_db": -1.0}, {"speed_vs_fp32": 0.0}, {"bench_cpu": "x\n"}, {"bench_side": 0}):
        with pytest.raises(CardError):
            dataclasses.replace(card, **bad)
    with pytest.raises(CardError):
        GeneratorCard.from_json(json.dumps({**old, "psnr_vs_fp32_db": "NaN"}))
