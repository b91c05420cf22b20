"""The one-command demo at a smaller size: every stage's real CLI, end to end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from cyclegan.contract.tiles import is_companion
from cyclegan.demo import DemoPlan, cartoon_flatness, eval_lines, export, run_demo
from serve.stylizer import Stylizer


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path):
    plan = DemoPlan.small(tmp_path / "demo")
    clock = run_demo(plan, clean=True)

    assert list(clock.seconds) == ["assets", "dataset", "train", "export", "stylize", "evaluate", "report"]
    # The dataset has both domains, built from the video and the photos.
    for folder in ("trainA", "trainB"):
        assert any((plan.dataset / folder).iterdir()), folder
    # Training reached the requested step and wrote generator cards; export verified them.
    rows = [json.loads(line) for line in (plan.run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == plan.steps
    onnx_models = sorted(m for m in plan.models.glob("*.onnx") if ".int8." not in m.name and not is_companion(m))
    assert len(onnx_models) == 2
    assert all(Stylizer(m).companions for m in onnx_models)  # seam-free tiles graphs next to each model
    for int8 in plan.models.glob("*.int8.onnx"):  # written only if it keeps the picture
        card = Stylizer(int8).card
        assert card.precision == "int8" and card.psnr_vs_fp32_db >= 30.0 and card.quant_recipe
    # Every held-out photo was stylized at its own size; the clip kept its frames.
    for source in sorted((plan.assets / "photos" / "test").glob("*.jpg")):
        outputs = list((plan.stylized / "photos").glob(source.stem + ".*"))
        assert outputs, source.name
        assert Image.open(outputs[0]).size == Image.open(source).size
    assert list((plan.stylized / "clip").glob("*.mp4"))
    for name in ("contact_sheet.png", "loss_curves.png", "summary.txt"):
        assert (plan.out / name).stat().st_size > 0
    summary = (plan.out / "summary.txt").read_text()
    assert "total" in summary
    # The exported model's scores on the held-out photos, as `cyclegan eval` wrote them.
    scores = json.loads(plan.eval_json.read_text())["scores"]
    assert f"checkerboard  {scores['checkerboard']:10.4f}" in summary
    assert f"colour_shift  {scores['colour_shift']:10.4f}" in summary
    assert f"flatness      {scores['flatness']:10.4f}" in summary and "(flatness: share of flat pixels" in summary

    # An int8 model under the floor stops the combined A2B export before it writes anything: the demo then
    # exports the fp32 model alone, so both directions are still there.
    unreachable = dataclasses.replace(plan, int8_min_psnr=199.0)
    export(unreachable)
    assert sorted(m.name for m in plan.models.glob("*.onnx") if not is_companion(m)) == [m.name for m in onnx_models]

    # A second run resumes instead of starting over: training has nothing left to do.
    before = (plan.run / "metrics.jsonl").read_text()
    run_demo(plan, clean=False)
    assert (plan.run / "metrics.jsonl").read_text().count("\n") >= before.count("\n")


def test_summary_gives_the_cartoons_own_flatness(tmp_path):
    """The summary's reading aid: the mean flatness of the held-out cartoon frames (testB), when there are some."""
    plan = DemoPlan(out=tmp_path / "demo")
    assert cartoon_flatness(plan) is None  # no dataset yet: no figure, and no error
    (plan.dataset / "testB").mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(plan.dataset / "testB" / "flat.png")
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(noise).save(plan.dataset / "testB" / "noise.png")
    assert cartoon_flatness(plan) == pytest.approx(0.5)  # all flat and none flat
    plan.models.mkdir(parents=True)
    (plan.models / "tiny_cpu_A2B.onnx").touch()  # the summary names the model it scored
    report = {"images": 2, "scores": {"flatness": 0.3}, "baseline": {"flatness": 0.1}}
    plan.eval_json.write_text(json.dumps(report))
    assert any("0.5000 on the cartoon's held-out frames" in line for line in eval_lines(plan))
