"""Scoring a model on a folder of images (what `cyclegan eval` prints and writes as JSON).

* paired (``targets``: the expected outputs, same file stems, same sizes): MAE, PSNR, SSIM per image, averaged;
* unpaired (``reference``: images of the target domain): KID and FID (:mod:`cyclegan.evaluation.distances`);
* always: the checkerboard score (:func:`cyclegan.evaluation.scores.checkerboard_score`, geometric mean), the
  flatness (:func:`~cyclegan.evaluation.scores.flatness`) and the colour shift from the input
  (:func:`~cyclegan.evaluation.scores.colour_shift`), arithmetic means.

Every score is also given for the input images returned unchanged (the identity baseline), so a figure is read
against doing nothing: a model whose MAE is above the input's own did worse than no model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from cyclegan.contract.images import ImageInputError, list_images, open_image
from cyclegan.evaluation import distances, scores
from cyclegan.evaluation.models import EvalInputError, Translate

PAIRED = ("mae", "psnr", "ssim")
# How each score reads: lower or higher is better (the table says so; training picks its best checkpoint by it).
LOWER_IS_BETTER = {"mae": True, "psnr": False, "ssim": False, "checkerboard": True, "kid": True, "fid": True}
# Scores that describe a style rather than rank models: how the table reads them.
READING = {
    "checkerboard": "near 1 (>1: grid)",
    "flatness": "cartoon: higher",
    "colour_shift": "lower: photo's colours",
}
_PRECISION = {"kid": 4, "ssim": 4, "flatness": 3}


@dataclass
class EvalReport:
    images: int
    scores: dict[str, float]  # the model's
    baseline: dict[str, float]  # the input images returned unchanged
    kid_subset_size: int | None = None
    per_image: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _folder(path: Path, what: str) -> list[Path]:
    if not path.is_dir():
        raise EvalInputError(f"{what} folder not found: {path}")
    found = list_images(path)
    if not found:
        raise EvalInputError(f"{what} folder {path} holds no images")
    stems: dict[str, Path] = {}
    for p in found:
        key = str(p.relative_to(path).with_suffix(""))
        if key in stems:
            raise EvalInputError(f"{what} folder {path}: {stems[key].name} and {p.name} have the same name")
        stems[key] = p
    return found


def _stem(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix(""))


def pair_targets(images: Path, targets: Path) -> list[tuple[Path, Path]]:
    """Each input image with the target of the same name (relative path without extension); all or an error."""
    inputs = {_stem(p, images): p for p in _folder(images, "images")}
    expected = {_stem(p, targets): p for p in _folder(targets, "targets")}
    no_target = sorted(set(inputs) - set(expected))
    no_input = sorted(set(expected) - set(inputs))
    if no_target or no_input:
        side = (
            f"{len(no_target)} image(s) without a target in {targets} (e.g. {no_target[0]})"
            if no_target
            else f"{len(no_input)} target(s) without an image in {images} (e.g. {no_input[0]})"
        )
        raise EvalInputError(f"the images and targets do not match by name: {side}; pair them by file name")
    return [(inputs[k], expected[k]) for k in sorted(inputs)]


def _open(path: Path) -> np.ndarray:
    try:
        return np.asarray(open_image(path).convert("RGB"))
    except ImageInputError as exc:
        raise EvalInputError(str(exc)) from None


def _check_sizes(pairs: list[tuple[Path, Path | None]]) -> None:
    for src_path, tgt_path in pairs:
        assert tgt_path is not None
        (sh, sw), (th, tw) = _open(src_path).shape[:2], _open(tgt_path).shape[:2]
        if (sh, sw) != (th, tw):
            raise EvalInputError(
                f"{tgt_path} is {tw}x{th} but its image {src_path} is {sw}x{sh}: a target must have its image's size"
            )


def evaluate(
    translate: Translate,
    images: Path,
    *,
    targets: Path | None = None,
    reference: Path | None = None,
    kid_subset_size: int | None = None,
    feature: Callable[[], object] | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Score ``translate`` on the images of ``images`` (see the module doc). ``feature``: a factory of the KID/FID
    feature network (default: the Inception-v3 weights, downloaded on first use). Everything is checked (folders,
    names, sizes, counts, the weights) before the model runs."""
    pairs = pair_targets(images, targets) if targets is not None else [(p, None) for p in _folder(images, "images")]
    refs = _folder(reference, "reference") if reference is not None else []
    network = None
    if reference is not None:
        subset = distances.kid_subset_size(len(pairs), len(refs), kid_subset_size)
        network = feature() if feature is not None else distances.inception()
    if targets is not None:
        _check_sizes(pairs)
    source_features, output_features = [], []  # KID/FID features, computed as the images go (no image is kept)
    per_image: list[dict[str, object]] = []
    for index, (src_path, tgt_path) in enumerate(pairs):
        src = _open(src_path)
        tgt = _open(tgt_path) if tgt_path is not None else None
        out = translate(src)
        if out.shape != src.shape:
            raise EvalInputError(f"the model returned {out.shape} for {src_path} of {src.shape}: it must keep the size")
        row: dict[str, object] = {
            "image": _stem(src_path, images),
            "checkerboard": scores.checkerboard_score(out, src),
            "flatness": scores.flatness(out),
            "flatness_input": scores.flatness(src),
            "colour_shift": scores.colour_shift(out, src),
        }
        if tgt is not None:
            for name in PAIRED:
                fn = getattr(scores, name)
                row[name] = fn(out, tgt)
                row[f"{name}_input"] = fn(src, tgt)
        per_image.append(row)
        if network is not None:
            source_features.append(distances.features([src], network))
            output_features.append(distances.features([out], network))
        if progress is not None:
            progress(f"{index + 1}/{len(pairs)} {src_path.name}")
    model: dict[str, float] = {}
    baseline: dict[str, float] = {}
    if targets is not None:
        for name in PAIRED:
            model[name] = float(np.mean([r[name] for r in per_image]))
            baseline[name] = float(np.mean([r[f"{name}_input"] for r in per_image]))
    # geometric mean: a ratio (an image twice as gridded and one half as much average to 1)
    model["checkerboard"] = math.exp(float(np.mean([math.log(r["checkerboard"]) for r in per_image])))
    baseline["checkerboard"] = 1.0
    model["flatness"] = float(np.mean([r["flatness"] for r in per_image]))
    baseline["flatness"] = float(np.mean([r["flatness_input"] for r in per_image]))
    model["colour_shift"] = float(np.mean([r["colour_shift"] for r in per_image]))
    baseline["colour_shift"] = 0.0
    report = EvalReport(len(per_image), model, baseline, per_image=per_image)
    if network is not None:
        real = distances.features((_open(p) for p in refs), network)
        model.update(distances.kid_fid(torch.cat(output_features), real, subset))
        baseline.update(distances.kid_fid(torch.cat(source_features), real, subset))
        report.kid_subset_size = subset
    return report


def table(report: EvalReport) -> str:
    """The terminal table: score | model | input unchanged | which way is better."""
    rows = [("score", "model", "input as is", "better")]
    for name, value in report.scores.items():
        if name == "kid_std":
            continue
        digits = _PRECISION.get(name, 2)
        shown = f"{value:.{digits}f}"
        base = report.baseline.get(name)
        base_shown = "" if base is None else f"{base:.{digits}f}"
        if name == "kid":
            shown += f" ± {report.scores['kid_std']:.4f}"
            base_shown += f" ± {report.baseline['kid_std']:.4f}"
        label = name.upper() if name in ("mae", "psnr", "ssim", "kid", "fid") else name
        if name == "psnr":
            label += " (dB)"
        if name == "kid":
            label += f" (subsets of {report.kid_subset_size})"
        better = READING.get(name) or ("lower" if LOWER_IS_BETTER[name] else "higher")
        rows.append((label, shown, base_shown, better))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
