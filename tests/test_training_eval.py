"""Evaluation during training (train.eval_every): eval/* scores in metrics.jsonl, the best generators kept as
generators/best_*.safetensors (exportable to ONNX, scored by `cyclegan eval`), KID with a small feature network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from faults import leftovers, tmpfs
from synthetic import make_permuted_dataset
from test_eval import ColourFeatures
from test_training import TINY as TRAINING_TINY

from cyclegan.config import load_config
from cyclegan.evaluation.cli import eval_command
from cyclegan.generator_io import load_generator, read_card
from cyclegan.training.cli import train as train_cmd
from cyclegan.training.evaluate import Evaluator
from cyclegan.training.nets import GeneratorPair
from cyclegan.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
TINY = [
    *TRAINING_TINY,
    "train.mixed_precision=no",  # Accelerate's state is per process: in-process runs in one pytest must agree
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_permuted_dataset(tmp_path_factory.mktemp("evaltrain") / "ds", n_train=4, n_test=3, size=32)


def test_eval_scores_logged_best_generators_kept_and_exportable(dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no Inception weights: cheap scores, cycle_mae
    run_dir = tmp_path / "run"
    cfg = load_config(
        REPO / "configs/tiny_cpu.yaml",
        [f"data.root={dataset}", f"train.output_dir={run_dir}", *TINY, "train.max_steps=3", "train.eval_every=2"],
    )
    result = train(cfg, progress=False)
    assert result.step == 3
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/cycle_mae" in r]
    assert [r["step"] for r in evals] == [2, 3]  # every 2 steps and the last
    for record in evals:
        for key in ("cycle_mae_A", "cycle_mae_B", "identity_mae", "checkerboard_A2B", "checkerboard_B2A"):
            assert np.isfinite(record[f"eval/{key}"]) and record[f"eval/{key}"] >= 0, (key, record)
        assert not any(k.startswith("eval/kid") for k in record)  # no weights on disk: no KID, nothing downloaded
        assert 0 <= record["eval/flatness_A2B"] <= 1 and 0 <= record["eval/flatness_B"] <= 1
        assert record["eval/colour_shift_A2B"] > 0  # an untrained generator changes the colours
    # the style domain's flatness is read off the same test images at every evaluation
    assert evals[0]["eval/flatness_B"] == evals[1]["eval/flatness_B"]
    assert not (tmp_path / "torch").exists()
    best_step = min(evals, key=lambda r: r["eval/cycle_mae"])["step"]
    for direction in ("A2B", "B2A"):
        card = read_card(run_dir / "generators" / f"best_{direction}.safetensors")
        assert card.step == best_step and card.direction == direction
        assert card.extra["eval_metric"] == "cycle_mae"
        assert card.extra["eval_score"] == pytest.approx(min(r["eval/cycle_mae"] for r in evals))
        load_generator(run_dir / "generators" / f"best_{direction}.safetensors")  # weights fit the card
    assert not [p for p in (run_dir / "generators").iterdir() if p.name.startswith(".")]  # no temporaries
    # `cyclegan eval` on the run folder scores the best generator
    out = CliRunner().invoke(eval_command, [str(run_dir), str(dataset / "testA"), "--json", str(tmp_path / "s.json")])
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "s.json").read_text())["model"].endswith("best_A2B.safetensors")


@pytest.mark.slow  # a verified ONNX export (~15 s on 2 cores)
def test_best_generator_exports_to_onnx_and_scores(dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    run_dir = tmp_path / "run"
    cfg = load_config(
        REPO / "configs/tiny_cpu.yaml",
        [f"data.root={dataset}", f"train.output_dir={run_dir}", *TINY, "train.max_steps=2", "train.eval_every=1"],
    )
    train(cfg, progress=False)
    from export.pipeline import ExportOptions, export_source

    reports = export_source(
        run_dir / "generators" / "best_A2B.safetensors", tmp_path / "models", ExportOptions(bench_side=0)
    )
    onnx_path = reports[0].variants[0].path
    scored = {}
    for name, model in (("onnx", onnx_path), ("run", run_dir)):
        args = [
            str(model),
            str(dataset / "testA"),
            "--targets",
            str(dataset / "testA"),
            "--json",
            str(tmp_path / f"{name}.json"),
        ]
        out = CliRunner().invoke(eval_command, args)
        assert out.exit_code == 0 and "checkerboard" in out.output, out.output
        scored[name] = json.loads((tmp_path / f"{name}.json").read_text())["scores"]
    # the ONNX model and its safetensors score the same (export is verified to < 1e-4; uint8 rounding aside)
    assert scored["onnx"]["mae"] == pytest.approx(scored["run"]["mae"], abs=0.05)


def test_kid_during_training_with_a_small_feature_network(dataset) -> None:
    cfg = load_config(REPO / "configs/tiny_cpu.yaml", [f"data.root={dataset}", *TINY, "train.eval_every=1"])
    torch.manual_seed(0)
    generators = GeneratorPair.from_config(cfg.model)
    rng_before = torch.get_rng_state()
    values = Evaluator(cfg, "kid", feature=ColourFeatures).scores(generators, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng_before)  # evaluating leaves training's RNG alone (exact resume)
    assert generators.training  # and the networks' mode
    assert {"eval/kid_A2B", "eval/kid_B2A", "eval/kid", "eval/cycle_mae"} <= values.keys()
    assert all(np.isfinite(v) for v in values.values())


def test_eval_metric_kid_without_weights_stops_before_anything_is_written(dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        train_cmd,
        [f"data.root={dataset}", f"train.output_dir={run_dir}", *TINY, "train.eval_every=2", "train.eval_metric=kid"],
    )
    assert result.exit_code == 2, result.output
    assert "train.eval_metric=kid needs the `eval` extra and the Inception weights" in result.output
    assert not run_dir.exists()
    bad = CliRunner().invoke(train_cmd, [f"data.root={dataset}", f"train.output_dir={run_dir}", "train.eval_every=-1"])
    assert bad.exit_code == 2 and "train.eval_every" in bad.output


def test_best_generator_that_cannot_be_written_stops_the_run_with_exit_1(dataset, tmp_path, monkeypatch) -> None:
    """A full disk at the first evaluation (a 64 KiB tmpfs: config.yaml fits, a generator does not)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with tmpfs(tmp_path / "run", "64k") as run_dir:
        args = [f"data.root={dataset}", f"train.output_dir={run_dir}", *TINY, "train.max_steps=2", "train.eval_every=1"]
        result = CliRunner().invoke(train_cmd, args)
        assert result.exit_code == 1, result.output
        assert "cannot write" in result.output and "best_A2B.safetensors" in result.output, result.output
        assert result.output.count("error:") == 1
        assert not list((run_dir / "checkpoints").glob("step_*"))  # stopped at the first evaluation
        assert not leftovers(run_dir / "generators")  # no temporary file left
