"""`cyclegan eval` on the three model kinds (ONNX, .safetensors, run folder), paired and unpaired, and its errors.

KID/FID run torchmetrics' real code with a small feature network made here (the Inception weights are not
downloaded in tests); the offline case runs in a real process with an empty torch cache and no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from onnx_models import make_test_model
from synthetic import permute, random_scene, write_png
from torch import nn

from cyclegan.config import load_config
from cyclegan.evaluation import scores
from cyclegan.evaluation.cli import eval_command
from cyclegan.generator_io import card_from_config, load_generator, save_generator
from cyclegan.models import build_generator

pytest.importorskip("torchmetrics")


class ColourFeatures(nn.Module):
    """A small feature network of our own: per-channel means and spreads plus a seeded 3x3 conv's pooled
    responses (uint8 [N, 3, H, W] -> [N, 14]); sensitive to colour, as KID/FID's Inception is."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0
        stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        return torch.cat([stats, self.conv(x).relu().mean(dim=(2, 3))], dim=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """photos/ (domain A scenes), truth/ (their channel permutation, same names), cartoons/ (other permuted scenes)."""
    root = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(0)
    for i in range(12):
        scene = random_scene(rng, 32)
        write_png(root / "photos" / f"p{i:02d}.png", scene)
        write_png(root / "truth" / f"p{i:02d}.png", permute(scene))
        write_png(root / "cartoons" / f"c{i:02d}.png", permute(random_scene(rng, 32)))
    return root


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("onnx") / "perm_A2B.onnx", kind="permute")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with generators/A2B.safetensors (step 10) and best_A2B.safetensors (step 5)."""
    run = tmp_path_factory.mktemp("run")
    cfg = load_config(None, ["model.generator=resnet_6blocks", "model.ngf=4", "data.crop_size=32"])
    torch.manual_seed(0)
    for name, step in (("A2B", 10), ("best_A2B", 5)):
        save_generator(
            run / "generators" / f"{name}.safetensors",
            build_generator(cfg.model),
            card_from_config(cfg, "A2B", step=step),
        )
    return run


def invoke(args: list, feature: nn.Module | None = None):
    return CliRunner().invoke(
        eval_command, [str(a) for a in args], obj={"feature": (lambda: feature)} if feature else None
    )


def test_onnx_paired_and_unpaired_scores(data, onnx_model, tmp_path) -> None:
    out = tmp_path / "scores.json"
    result = invoke(
        [onnx_model, data / "photos", "--targets", data / "truth", "--reference", data / "cartoons", "--json", out],
        ColourFeatures(),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["kind"], report["direction"], report["images"]) == ("onnx", "A2B", 12)
    s, b = report["scores"], report["baseline"]
    # the permuting model is the ground truth: perfect paired scores; the input itself is far off
    assert (s["mae"], s["psnr"], s["ssim"]) == (0.0, scores.PSNR_CAP, pytest.approx(1.0))
    assert b["mae"] > 30 and b["psnr"] < 20
    # a 1x1 conv adds no grid (the score is not exactly 1: permuting colours changes the luminance's contrast)
    assert 0.5 < s["checkerboard"] < 1.5
    # permuting the channels is all palette: a large colour shift against none for the input; the flatness of
    # output and input are both read off the pictures (not the same: the luminance changes with the permutation)
    assert s["colour_shift"] > 10 and b["colour_shift"] == 0.0
    assert 0 < s["flatness"] < 1 and 0 < b["flatness"] < 1
    assert b["flatness"] == pytest.approx(np.mean([r["flatness_input"] for r in report["per_image"]]))
    # its outputs look like the reference domain (permuted scenes), the inputs do not
    assert 0 < report["kid_subset_size"] <= 12
    assert s["kid"] < b["kid"] and s["fid"] < b["fid"]
    assert all(np.isfinite(v) for v in [*s.values(), *b.values()])
    assert [row["image"] for row in report["per_image"]] == [f"p{i:02d}" for i in range(12)]
    for line in ("MAE", "PSNR (dB)", "SSIM", "checkerboard", "flatness", "colour_shift", "KID (subsets of 12)", "FID"):
        assert line in result.output
    assert "input as is" in result.output
    # the JSON is not replaced without --overwrite
    again = invoke([onnx_model, data / "photos", "--json", out])
    assert again.exit_code == 2 and "already exists" in again.output and "--overwrite" in again.output
    assert invoke([onnx_model, data / "photos", "--json", out, "--overwrite"]).exit_code == 0
    unpaired = json.loads(out.read_text())["scores"]  # no targets, no reference: the scores that need neither
    assert set(unpaired) == {"checkerboard", "flatness", "colour_shift"}


def test_safetensors_and_run_folder(data, run_dir, tmp_path) -> None:
    gen = run_dir / "generators" / "A2B.safetensors"
    out = tmp_path / "st.json"
    result = invoke([gen, data / "photos", "--targets", data / "truth", "--json", out])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["kind"], report["step"]) == ("safetensors", 10)
    # the scores are those of the generator's own forward pass on each photo
    module, _ = load_generator(gen)
    from PIL import Image

    maes = []
    for i in range(12):
        src = np.array(Image.open(data / "photos" / f"p{i:02d}.png"))
        x = torch.from_numpy(src).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            y = ((module(x)[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        maes.append(scores.mae(y, permute(src)))
    assert report["scores"]["mae"] == pytest.approx(np.mean(maes), abs=0.02)
    # a run folder: best_A2B (step 5) is preferred over A2B (step 10)
    result = invoke([run_dir, data / "photos", "--targets", data / "truth", "--json", tmp_path / "run.json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["kind"] == "run" and report["model"].endswith("best_A2B.safetensors") and report["step"] == 5
    # unpaired on a run folder, with the small feature network
    result = invoke(
        [run_dir, data / "photos", "--reference", data / "cartoons", "--kid-subset-size", "6"], ColourFeatures()
    )
    assert result.exit_code == 0 and "KID (subsets of 6)" in result.output, result.output


@pytest.mark.parametrize("kind", ["onnx", "safetensors", "run"])
def test_both_modes_for_every_model_kind(kind, data, onnx_model, run_dir, tmp_path) -> None:
    model = {"onnx": onnx_model, "safetensors": run_dir / "generators" / "A2B.safetensors", "run": run_dir}[kind]
    args = [model, data / "photos", "--targets", data / "truth", "--reference", data / "cartoons"]
    result = invoke([*args, "--json", tmp_path / "s.json"], ColourFeatures())
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["kind"] == kind and report["images"] == 12
    assert {"mae", "psnr", "ssim", "checkerboard", "kid", "kid_std", "fid"} <= report["scores"].keys()
    assert report["baseline"]["mae"] == pytest.approx(np.mean([r["mae_input"] for r in report["per_image"]]))


@pytest.mark.parametrize("kind", ["onnx", "safetensors", "run"])
def test_errors_are_one_line_exit_2(kind, data, onnx_model, run_dir, tmp_path) -> None:
    model = {"onnx": onnx_model, "safetensors": run_dir / "generators" / "A2B.safetensors", "run": run_dir}[kind]

    def error(args, feature=None, match=""):
        result = invoke(args, feature)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
        assert match in result.output, result.output
        return result.output

    photos = data / "photos"
    error([model, tmp_path / "nope"], match="images folder not found")
    error([model, photos, "--targets", tmp_path / "nope"], match="targets folder not found")
    error([model, photos, "--reference", tmp_path / "nope"], match="reference folder not found")
    error([tmp_path / "missing.onnx", photos], match="no such model")
    error([tmp_path, photos], match="not a training run")
    error([run_dir, photos, "--direction", "B2A"], match="B2A")
    (tmp_path / "notes.txt").write_text("x")
    error([tmp_path / "notes.txt", photos], match="expected a run folder, a .safetensors generator or an .onnx")
    for name in ("broken.onnx", "broken.safetensors"):  # not loadable: the loaders' own one-line errors
        (tmp_path / name).write_bytes(b"not a model")
        error([tmp_path / name, photos], match=name)
    # names that do not match
    odd = tmp_path / "odd"
    for i in range(12):
        write_png(odd / f"p{i:02d}.png" if i else odd / "other.png", np.zeros((32, 32, 3), np.uint8))
    error([model, photos, "--targets", odd], match="do not match by name")
    # a target of another size
    sized = tmp_path / "sized"
    for i in range(12):
        write_png(sized / f"p{i:02d}.png", np.zeros((32, 32 if i != 7 else 30, 3), np.uint8))
    error([model, photos, "--targets", sized], match="p07.png is 30x32 but its image")
    # too few images for KID
    few = tmp_path / "few"
    write_png(few / "c.png", np.zeros((32, 32, 3), np.uint8))
    error([model, photos, "--reference", few], ColourFeatures(), match="at least 2 images")
    error(
        [model, photos, "--reference", data / "cartoons", "--kid-subset-size", "50"],
        ColourFeatures(),
        match="subsets of 50 images needs at least 50",
    )
    # an existing --json file is never touched by a failing run either
    keep = tmp_path / "keep.json"
    keep.write_text("mine")
    error([model, photos, "--json", keep], match="already exists")
    assert keep.read_text() == "mine"


def test_offline_without_inception_weights_says_how_to_get_them(data, onnx_model, tmp_path) -> None:
    env = {
        **os.environ,
        "TORCH_HOME": str(tmp_path / "torch"),  # no cached weights
        "HTTPS_PROXY": "http://127.0.0.1:9",  # and no network: the download is refused at once
        "https_proxy": "http://127.0.0.1:9",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    cmd = [
        sys.executable,
        "-m",
        "cyclegan",
        "eval",
        str(onnx_model),
        str(data / "photos"),
        "--reference",
        str(data / "cartoons"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    # torch.hub announces the download it tries ("Downloading: ..."); then one error line
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert (
        len(lines) == 1
        and proc.stderr.strip().endswith(lines[0])
        and lines[0].startswith("error: the Inception weights for KID/FID are missing")
    ), proc.stderr
    assert "weights-inception-2015-12-05-6726825d.pth" in lines[0] and "TORCH_HOME" in lines[0]
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth").exists()
