"""export: torch generators -> verified ONNX files (parity per kind, metadata, dynamic sizes, errors)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from cyclegan.cli import main as cyclegan_main
from cyclegan.config import Config, DataConfig, ModelConfig
from cyclegan.contract.card import GeneratorCard
from cyclegan.generator_io import card_from_config, read_card, save_generator
from cyclegan.models import build_generator
from export.cli import export as export_command
from export.pipeline import ExportOptions, export_generator, output_path
from export.verify import ParityError, check_parity, make_session, random_input, run_session
from serve.stylizer import Stylizer

REPO = Path(__file__).resolve().parents[1]
# Small widths keep every export a few seconds; unet_256 needs 8 levels, so its ngf is tiny.
KINDS = [
    pytest.param(("resnet_9blocks", "instance", 4, "deconv"), id="resnet_9blocks-instance"),
    pytest.param(("resnet_6blocks", "batch", 4, "deconv"), id="resnet_6blocks-batch"),
    pytest.param(("resnet_6blocks", "instance", 4, "resize"), id="resnet_6blocks-instance-resize"),
    pytest.param(("unet_128", "instance", 4, "deconv"), id="unet_128-instance"),
    pytest.param(("unet_128", "batch", 4, "resize"), id="unet_128-batch-resize", marks=pytest.mark.slow),
    pytest.param(("unet_256", "batch", 2, "deconv"), id="unet_256-batch", marks=pytest.mark.slow),
]
NO_BENCH = ExportOptions(bench_side=0)
# The tests of the checking logic use the (3-5x faster) TorchScript exporter; the per-kind fixture
# below goes through the default (dynamo) path that users get.
FAST = dataclasses.replace(NO_BENCH, exporter="torchscript")


def save_test_generator(
    path: Path,
    kind: str = "resnet_6blocks",
    norm: str = "instance",
    ngf: int = 4,
    direction: str = "A2B",
    seed: int = 0,
    upsample: str = "deconv",
) -> GeneratorCard:
    """A randomly initialised generator saved as training does; batch norm gets non-trivial running stats."""
    cfg = Config(
        name="export test",
        model=ModelConfig(generator=kind, norm=norm, ngf=ngf, upsample=upsample),
        data=DataConfig(domain_a="photo", domain_b="cartoon"),
    )
    torch.manual_seed(seed)
    net = build_generator(cfg.model)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # eval mode must use these, not batch statistics
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    card = card_from_config(cfg, direction, step=123, epoch=4)
    save_generator(path, net, card)
    return card


@pytest.fixture(scope="module", params=KINDS)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    kind, norm, ngf, upsample = request.param
    root = tmp_path_factory.mktemp(kind)
    source = root / "G.safetensors"
    save_test_generator(source, kind, norm, ngf, upsample=upsample)
    report = export_generator(source, root / "out", NO_BENCH)
    return source, report


def test_every_kind_matches_pytorch_at_several_sizes(exported) -> None:
    source, report = exported
    card = read_card(source)
    shapes = [(c.batch, c.height, c.width) for c in report.parity]
    assert any(h != w for _, h, w in shapes), "parity must include a non-square size"
    assert any(b == 2 for b, _, _ in shapes), "parity must include batch 2"
    assert all(h % card.size_multiple == 0 and w % card.size_multiple == 0 for _, h, w in shapes)
    assert max(c.max_abs_diff for c in report.parity) < 1e-4


@pytest.mark.parametrize(
    ("skip_blur", "skip_filter", "skip_change", "skip_levels"),
    [(0.0, "gaussian", "rgb", 0), (1.5, "gaussian", "rgb", 0), (1.5, "bilateral", "luminance", 9)],
)
def test_global_skip_generator_exports_with_parity(
    tmp_path: Path, skip_blur: float, skip_filter: str, skip_change: str, skip_levels: int
) -> None:
    """The image skip (blur or bilateral filter, add, clamp) exports and matches PyTorch; the last convolution is
    perturbed from its zero start so the comparison is not input-versus-input."""
    model = ModelConfig(
        generator="resnet_6blocks",
        ngf=4,
        upsample="resize",
        global_skip=True,
        skip_blur=skip_blur,
        skip_filter=skip_filter,
        skip_change=skip_change,
        skip_levels=skip_levels,
    )
    cfg = Config(model=model)
    net = build_generator(cfg.model)
    with torch.no_grad():
        [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.normal_(0, 0.05)
    save_generator(tmp_path / "G.safetensors", net, card_from_config(cfg, "A2B"))
    report = export_generator(tmp_path / "G.safetensors", tmp_path / "out", FAST)
    assert max(c.max_abs_diff for c in report.parity) < 1e-4
    card = Stylizer(report.variants[0].path).card
    assert card.global_skip and card.skip_blur == skip_blur and card.skip_filter == skip_filter
    assert card.skip_change == skip_change and card.skip_levels == skip_levels


def test_outlines_are_drawn_by_the_exported_model_with_parity(tmp_path: Path) -> None:
    """export --outlines: the model draws dark lines along an edge, in onnxruntime as in PyTorch, and says so."""
    model = ModelConfig(
        generator="resnet_6blocks", ngf=4, upsample="resize", global_skip=True, skip_blur=1.5,
        skip_filter="bilateral", skip_change="luminance", skip_levels=8,
    )  # fmt: skip
    net = build_generator(model)
    with torch.no_grad():
        [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.normal_(0, 0.05)
    save_generator(tmp_path / "G.safetensors", net, card_from_config(Config(model=model), "A2B"))
    image = np.full((1, 64, 64, 3), 200, np.uint8)
    image[:, :, 32:] = (60, 90, 200)  # a light area beside a blue one
    outputs = {}
    for sigma in (0.0, 1.5):
        options = dataclasses.replace(FAST, outlines=sigma)
        report = export_generator(tmp_path / "G.safetensors", tmp_path / f"out{sigma}", options)
        assert max(c.max_abs_diff for c in report.parity) < 1e-4
        stylizer = Stylizer(report.variants[0].path)
        assert stylizer.card.outlines == sigma
        outputs[sigma] = stylizer.run_array(image)[0].astype(int).sum(-1)
    darkening = outputs[1.5] - outputs[0.0]
    assert darkening[:, 28:36].min() < -150  # a dark line along the edge...
    assert np.abs(darkening[:, :20]).max() <= 3 and np.abs(darkening[:, 44:]).max() <= 3  # ...and nowhere else


@pytest.mark.parametrize(
    ("global_skip", "outlines", "message"),
    [
        (False, "1.5", "--outlines needs a generator with the image skip"),
        (True, "5", "--outlines must be a line sigma from 0 to 4 px, got 5.0"),
        (True, "nan", "--outlines must be a line sigma from 0 to 4 px, got nan"),
    ],
)
def test_bad_outlines_are_refused_before_anything_is_written(
    tmp_path: Path, global_skip: bool, outlines: str, message: str
) -> None:
    model = ModelConfig(generator="resnet_6blocks", ngf=4, upsample="resize", global_skip=global_skip)
    save_generator(tmp_path / "G.safetensors", build_generator(model), card_from_config(Config(model=model), "A2B"))
    result = CliRunner().invoke(
        export_command, [str(tmp_path / "G.safetensors"), "--out", str(tmp_path / "out"), "--outlines", outlines]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_dynamic_batch_and_sizes_in_onnxruntime(exported) -> None:
    """A size not used during export or verification, batch 3: same result as PyTorch."""
    from cyclegan.generator_io import load_generator

    source, report = exported
    module, card = load_generator(source)
    m = card.size_multiple
    x = random_input(3, 3, 2 * m if m > 4 else 44, 3 * m if m > 4 else 76, seed=42)
    session = make_session(report.variants[0].path)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_session(session, x), expected, atol=1e-4, rtol=0)
    assert session.get_inputs()[0].name == "input" and session.get_outputs()[0].name == "output"
    assert [session.get_inputs()[0].shape[i] for i in (0, 2, 3)] == ["batch", "height", "width"]


def test_metadata_is_the_safetensors_card_plus_export_fields(exported) -> None:
    source, report = exported
    (variant,) = report.variants
    stored = Stylizer(variant.path).card
    expected = dataclasses.replace(read_card(source), precision="fp32", opset=18, max_side=1024)
    if variant.companions:  # instance-norm ResNets: the seam-free tiles companions (tests/test_tiles.py)
        expected.stats_model, expected.tiles_model = (p.name for p in variant.companions)
        expected.stats_size = stored.stats_size
    assert stored == expected
    assert stored.step == 123 and stored.source_domain == "photo" and stored.target_domain == "cartoon"
    assert stored.project_version  # what a server shows needs no second file


def test_output_is_one_self_contained_file(exported) -> None:
    _, report = exported
    (variant,) = report.variants
    companions = [p.name for p in variant.companions]  # tiles companions: their own self-contained files
    assert sorted(p.name for p in variant.path.parent.iterdir()) == sorted([variant.path.name, *companions])
    model = onnx.load(str(variant.path), load_external_data=False)
    assert not any(
        t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    )
    assert oct(variant.path.stat().st_mode & 0o777) != oct(0o600)  # not left with mkstemp's private mode


def test_torchscript_exporter_also_verifies(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source, "resnet_6blocks", "instance")
    report = export_generator(source, tmp_path / "out", FAST)
    assert report.exporter == "torchscript"
    assert max(c.max_abs_diff for c in report.parity) < 1e-4


def test_parity_check_catches_a_different_model(tmp_path: Path) -> None:
    """The check compares real outputs: a model with other weights must fail it."""
    from cyclegan.generator_io import load_generator

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_test_generator(a, seed=0)
    save_test_generator(b, seed=1)
    report = export_generator(a, tmp_path / "out", FAST)
    other, card = load_generator(b)
    with pytest.raises(ParityError, match="differs from PyTorch"):
        check_parity(other, make_session(report.variants[0].path), input_nc=3, size_multiple=card.size_multiple)


def test_failed_verification_leaves_no_file(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    out = tmp_path / "out"
    with pytest.raises(ParityError, match="tolerance is 1e-12"):
        export_generator(source, out, dataclasses.replace(FAST, tolerance=1e-12))
    assert list(out.iterdir()) == []


def test_run_folder_both_directions_with_int8_and_fp16(tmp_path: Path) -> None:
    from synthetic import random_scene, write_png

    run = tmp_path / "run"
    for direction in ("A2B", "B2A"):
        save_test_generator(run / "generators" / f"{direction}.safetensors", direction=direction, seed=len(direction))
    rng = np.random.default_rng(0)
    for i in range(6):
        write_png(tmp_path / "calib" / f"c{i}.png", random_scene(rng, 80))
    out = tmp_path / "onnx"
    result = CliRunner().invoke(
        export_command,
        [
            str(run),
            "--out",
            str(out),
            "--precision",
            "fp32",
            "--precision",
            "int8",
            "--precision",
            "fp16",
            "--calibration-dir",
            str(tmp_path / "calib"),
            "--bench-size",
            "32",
            "--max-side",
            "700",
            "--exporter",
            "torchscript",
            "--int8-min-psnr",  # random weights: a noise amplifier (tests/test_export_int8.py: trained ones)
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [output_path(out, "export test", d, p).name for d in ("A2B", "B2A") for p in ("fp32", "int8", "fp16")]
        + [f"export-test_{d}.{form}.onnx" for d in ("A2B", "B2A") for form in ("stats", "tiles")]
    )
    psnrs = {m.group(1): float(m.group(2)) for m in re.finditer(r"(int8|fp16) ->.*PSNR ([\d.]+) dB", result.output)}
    assert psnrs["fp16"] > 50, result.output
    assert psnrs["int8"] > 22, result.output  # random weights at ngf 4: a loose but meaningful floor
    assert "ms/image at 32px" in result.output

    int8_path = output_path(out, "export test", "B2A", "int8")
    card = Stylizer(int8_path).card
    assert (card.direction, card.precision, card.max_side, card.source_domain) == ("B2A", "int8", 700, "cartoon")
    ops = [n.op_type for n in onnx.load(str(int8_path)).graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    assert "InstanceNormalization" in ops  # normalisation stays float
    fp16 = onnx.load(str(output_path(out, "export test", "A2B", "fp16")))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # the serving contract
    assert Stylizer(output_path(out, "export test", "A2B", "fp16")).card.precision == "fp16"

    x = random_input(1, 3, 64, 48)
    reference = run_session(make_session(output_path(out, "export test", "B2A", "fp32")), x)
    assert np.abs(run_session(make_session(int8_path), x) - reference).mean() < 0.1


def test_int8_without_calibration_images_is_refused_before_exporting(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    result = CliRunner().invoke(export_command, [str(source), "--out", str(tmp_path / "out"), "--precision", "int8"])
    assert result.exit_code != 0
    assert "--calibration-dir" in result.output
    assert not (tmp_path / "out").exists()


def test_corrupt_safetensors_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "A2B.safetensors"
    bad.write_bytes(os.urandom(64))
    result = CliRunner().invoke(cyclegan_main, ["export", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2  # the input is unusable: nothing was done
    assert "cannot load generator" in result.output and str(bad) in result.output
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_direction_mismatch_for_a_single_file(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source, direction="B2A")
    result = CliRunner().invoke(export_command, [str(source), "--out", str(tmp_path / "o"), "--direction", "A2B"])
    assert result.exit_code != 0 and "holds the B2A generator" in result.output


def test_python_m_export_reports_missing_inputs(tmp_path: Path) -> None:
    """The real entry point in a real process: a run folder without generators exits non-zero."""
    (tmp_path / "run").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "export", str(tmp_path / "run"), "--out", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "missing" in proc.stderr and "A2B.safetensors" in proc.stderr, proc.stderr
