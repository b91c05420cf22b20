"""Evaluation during training (``train.eval_every``): scores on the held-out test split, the best generators kept.

Every ``eval_every`` steps (and at the last step) the main process runs the generators that are exported (the EMA
weights when EMA is on) in eval mode on the first ``train.eval_images`` images of testA and testB (resized and
centre-cropped to the training crop, like the sample grids) and computes, in 0-255 units where it is an error:

* ``eval/cycle_mae_A`` (A -> B -> A vs A), ``eval/cycle_mae_B``, and their mean ``eval/cycle_mae``;
* ``eval/identity_mae_A2B`` (G_A on B images vs themselves), ``eval/identity_mae_B2A``, mean ``eval/identity_mae``;
* ``eval/checkerboard_A2B`` (G_A(a) vs a, :func:`cyclegan.evaluation.scores.checkerboard_score`, geometric mean over
  images), ``eval/checkerboard_B2A``;
* ``eval/flatness_A2B`` (share of flat pixels in G_A(a), :func:`cyclegan.evaluation.scores.flatness`; the style
  domain's own as ``eval/flatness_B``) and ``eval/colour_shift_A2B`` (G_A(a)'s palette drift from a,
  :func:`~cyclegan.evaluation.scores.colour_shift`): a style should move the first towards the second and keep the
  last small;
* ``eval/kid_A2B`` (G_A(testA) vs testB), ``eval/kid_B2A``, mean ``eval/kid`` -- only when the Inception weights are
  already on disk (:mod:`cyclegan.evaluation.distances`); training never downloads them.

The scores go to metrics.jsonl and Accelerate's trackers. When ``train.eval_metric`` (lower is better; ``auto``:
``kid`` with the weights, else ``cycle_mae``) improves on the best so far, both generators are written as
``generators/best_A2B.safetensors`` / ``best_B2A.safetensors`` (atomic, with their cards; the score in the cards'
``extra``). The best score is part of the checkpoint (:class:`~cyclegan.training.state.TrainerState`), so a resumed
run compares against it. Other processes wait at a gather that also hands them the best score, so all ranks stay in
step and a failure on the main process (a full disk) stops every process with its message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from accelerate.utils import gather_object

from cyclegan.config import Config
from cyclegan.contract.errors import EXIT_FAILED, ToolkitError
from cyclegan.data import load_fixed_images
from cyclegan.evaluation import scores
from cyclegan.models.pixels import model_to_unit
from cyclegan.training.errors import TrainingSetupError
from cyclegan.training.outputs import export_generators

BEST_PREFIX = "best_"


class EvaluationFailedError(ToolkitError):
    """The evaluation failed on the main process (e.g. best_*.safetensors could not be written); checkpoints are
    intact: continue with --resume latest."""

    exit_code = EXIT_FAILED


def resolve_metric(cfg: Config) -> str:
    """``train.eval_metric`` with ``auto`` resolved; ``kid`` without the Inception weights on disk is refused."""
    from cyclegan.evaluation import distances

    metric = cfg.train.eval_metric
    present = distances.kid_available()
    if metric == "kid" and not present and cfg.train.eval_every:
        raise TrainingSetupError(
            f"train.eval_metric=kid needs the `eval` extra and the Inception weights on disk "
            f"({distances.inception_weights_path()}); training never downloads them: run `cyclegan eval MODEL "
            "IMAGES --reference DIR` once with network access (it fetches them), or use train.eval_metric=cycle_mae"
        )
    if metric == "auto":
        return "kid" if present else "cycle_mae"
    return metric


def check(cfg: Config) -> None:
    """Before anything is written: an evaluation that cannot run stops the run (see :func:`resolve_metric`)."""
    if cfg.train.eval_every:
        resolve_metric(cfg)


def _uint8(batch: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] (the exported images' rounding)."""
    unit = model_to_unit(batch.float()).clamp(0, 1)
    return (unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _in_chunks(net: torch.nn.Module, size: int = 8) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` over a batch, ``size`` images at a time (50 test images at 256 px would not fit a GPU at once)."""
    return lambda x: torch.cat([net(chunk) for chunk in x.split(size)]) if len(x) else x


def _mean(score: Callable[..., float], *images: np.ndarray) -> float:
    return float(np.mean([score(*one) for one in zip(*images)]))


def _checkerboard(out: np.ndarray, src: np.ndarray) -> float:
    return math.exp(float(np.mean([math.log(scores.checkerboard_score(o, s)) for o, s in zip(out, src)])))


@dataclass
class Evaluator:
    """Owned by the training loop; :meth:`maybe_run` is its one line."""

    cfg: Config
    metric: str
    images: tuple[torch.Tensor, torch.Tensor] | None = None  # testA, testB in [-1, 1], loaded on first use
    # KID's feature network: None = the Inception weights when they are on disk (else no KID); a factory of another
    # network (uint8 [N, 3, H, W] -> [N, F]) computes KID with that one (the tests' small network)
    feature: Callable[[], torch.nn.Module] | None = None
    _kid: tuple | None = None  # (network, real features of testA, of testB)

    @classmethod
    def for_run(cls, cfg: Config) -> Evaluator | None:
        return cls(cfg, resolve_metric(cfg)) if cfg.train.eval_every else None

    def maybe_run(self, run, logger, last: bool) -> None:
        """Evaluate when the step is due (every ``eval_every`` steps and at the last); every process calls it."""
        step = run.state.step
        if step % self.cfg.train.eval_every and not last:
            return
        acc, state = run.accelerator, run.state
        failure: Exception | None = None
        if acc.is_main_process:
            try:
                values = self.scores(run.export_generators, acc.device)
                logger.log_scores(step, state.epoch, values)
                self._keep_best(run, values)
            except Exception as exc:  # noqa: BLE001 - told to the other processes below, then raised here
                failure = exc
        if acc.num_processes > 1:  # the others wait here; every rank's TrainerState gets the best (each node may
            # save its own copy of it), and a failure on the main process (a full disk) stops every process
            told = gather_object([(None if failure is None else str(failure), self._best(state))])[0]
            state.eval_metric, state.eval_best, state.eval_best_step = told[1]
            if failure is None and told[0] is not None:
                raise EvaluationFailedError(f"the evaluation at step {step} failed on the main process: {told[0]}")
        if failure is not None:
            raise failure

    @staticmethod
    def _best(state) -> tuple[str | None, float | None, int | None]:
        return state.eval_metric, state.eval_best, state.eval_best_step

    def scores(self, generators: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """The eval/* scores of ``generators`` (their mode and every RNG are left as they were: building a feature
        network draws initial weights, and a resumed run must draw the same numbers as an uninterrupted one)."""
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            return self._scores(generators, device)

    def _scores(self, generators: torch.nn.Module, device: torch.device) -> dict[str, float]:
        if self.images is None:
            n, size, root = self.cfg.train.eval_images, self.cfg.data.crop_size, self.cfg.data.root
            self.images = (load_fixed_images(root, "A", n, size), load_fixed_images(root, "B", n, size))
        real_a, real_b = (t.to(device) for t in self.images)
        was_training = generators.training
        generators.eval()
        try:
            g_a, g_b = _in_chunks(generators.g_a), _in_chunks(generators.g_b)
            fake_b, fake_a = g_a(real_a), g_b(real_b)
            rec_a, rec_b = g_b(fake_b), g_a(fake_a)
            idt_a2b, idt_b2a = g_a(real_b), g_b(real_a)
        finally:
            generators.train(was_training)
        ra, rb, fa, fb = _uint8(real_a), _uint8(real_b), _uint8(fake_a), _uint8(fake_b)
        values = {
            "eval/cycle_mae_A": _mean(scores.mae, _uint8(rec_a), ra),
            "eval/cycle_mae_B": _mean(scores.mae, _uint8(rec_b), rb),
            "eval/identity_mae_A2B": _mean(scores.mae, _uint8(idt_a2b), rb),
            "eval/identity_mae_B2A": _mean(scores.mae, _uint8(idt_b2a), ra),
            "eval/checkerboard_A2B": _checkerboard(fb, ra),
            "eval/checkerboard_B2A": _checkerboard(fa, rb),
            "eval/flatness_A2B": _mean(scores.flatness, fb),
            "eval/flatness_B": _mean(scores.flatness, rb),
            "eval/colour_shift_A2B": _mean(scores.colour_shift, fb, ra),
        }
        values["eval/cycle_mae"] = (values["eval/cycle_mae_A"] + values["eval/cycle_mae_B"]) / 2
        values["eval/identity_mae"] = (values["eval/identity_mae_A2B"] + values["eval/identity_mae_B2A"]) / 2
        values.update(self._kid_scores(ra, rb, fa, fb))
        return values

    def _kid_scores(self, ra: np.ndarray, rb: np.ndarray, fa: np.ndarray, fb: np.ndarray) -> dict[str, float]:
        from cyclegan.evaluation import distances

        if self._kid is None:
            if self.feature is None and not distances.kid_available():
                return {}
            network = self.feature() if self.feature is not None else distances.inception(download=False)
            self._kid = (network, distances.features(ra, network), distances.features(rb, network))
        network, feat_a, feat_b = self._kid
        if min(len(ra), len(rb)) < 2:
            return {}
        subset = distances.kid_subset_size(len(ra), len(rb), None)
        kid_a2b = distances.kid_fid(distances.features(fb, network), feat_b, subset)["kid"]
        kid_b2a = distances.kid_fid(distances.features(fa, network), feat_a, subset)["kid"]
        return {"eval/kid_A2B": kid_a2b, "eval/kid_B2A": kid_b2a, "eval/kid": (kid_a2b + kid_b2a) / 2}

    def _keep_best(self, run, values: dict[str, float]) -> None:
        state, key = run.state, f"eval/{self.metric}"
        score = values.get(key)
        if score is None or not math.isfinite(score):
            return
        if state.eval_metric != self.metric:  # a new run, or a resume that measures by another score
            state.eval_metric, state.eval_best, state.eval_best_step = self.metric, None, None
        if state.eval_best is not None and score >= state.eval_best:
            return
        state.eval_best, state.eval_best_step = score, state.step
        export_generators(
            run.export_generators,
            run.cfg,
            run.dir / "generators",
            state.step,
            state.epoch,
            run.ema is not None,
            prefix=BEST_PREFIX,
            extra={"eval_metric": self.metric, "eval_score": score},
        )
