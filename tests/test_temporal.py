"""serve.temporal: the video stabiliser holds what did not change, follows what did, restarts at cuts.

The unit tests feed it frames and stylized frames made here (the stabiliser is a pure function of them); the
stylized frames of the last test come from a real ONNX generator run by the Stylizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media import texture
from onnx_models import make_test_model

from serve.stylizer import Stylizer
from serve.temporal import TOLERANCE, CutDetector, TemporalStabiliser, block_change

H, W = 64, 96


def noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def test_static_background_is_held_steady_but_never_departs_beyond_the_tolerance() -> None:
    rng = np.random.default_rng(0)
    background = texture(H, W, seed=1).astype(np.float32)
    base = texture(H, W, seed=2).astype(np.float32)  # its "stylization"
    stabiliser = TemporalStabiliser()
    outputs = []
    for _ in range(10):  # sensor noise on the input, a flickering answer (+-4 levels) from the "generator"
        frame = noisy(background, rng, 2.0)
        styled = np.clip(base + rng.integers(-4, 5, base.shape), 0, 255).astype(np.uint8)
        outputs.append(stabiliser(frame, styled))
        assert np.abs(outputs[-1].astype(int) - styled).max() <= TOLERANCE
    assert all(np.array_equal(out, outputs[0]) for out in outputs[1:])  # not one level moved
    assert stabiliser.changed == 0.0  # the noise was not taken for change
    # A drift of the stylized frame beyond the tolerance (same input) drags the output along: it never freezes.
    frame = noisy(background, rng, 2.0)
    drifted = np.clip(base + 30, 0, 255).astype(np.uint8)
    out = stabiliser(frame, drifted)
    assert np.abs(out.astype(int) - drifted).max() <= TOLERANCE
    assert np.abs(out.astype(int) - outputs[0]).mean() > 15


def test_a_moving_object_shows_as_stylized_where_the_input_changed() -> None:
    background = texture(H, W, seed=3)
    stabiliser = TemporalStabiliser()
    for step, x in enumerate(range(8, 64, 16)):
        frame = background.copy()
        frame[16:48, x : x + 24] = (230, 40, 40)  # a red square moving right by 16 px per frame
        styled = texture(H, W, seed=10 + step)  # every frame's stylization differs everywhere
        out = stabiliser(frame, styled)
        if step == 0:
            assert np.array_equal(out, styled)  # the first frame is the stylized frame
            previous = frame
            continue
        changed = block_change(frame, previous, 1) > 0  # [H, W]: pixels whose input changed
        previous = frame
        inner = np.zeros_like(changed)  # changed pixels at least one block (4 px) from unchanged ones
        inner[20:44] = changed[20:44]
        inner[:, :4] = inner[:, -4:] = False
        inner &= np.roll(changed, 4, axis=1) & np.roll(changed, -4, axis=1)
        assert inner.sum() == 2 * 8 * 24  # where it arrived and where it left, less a block at each edge
        assert np.array_equal(out[inner], styled[inner])  # the new frame's content, exactly
        still = ~changed
        still[:, max(0, x - 16) : x + 40] = False  # well away from the square
        assert np.abs(out[still].astype(int) - styled[still]).max() <= TOLERANCE
    assert stabiliser.cuts == 0


def test_a_scene_cut_restarts_from_the_new_frame() -> None:
    stabiliser = TemporalStabiliser()
    shot_a, shot_b = texture(H, W, seed=4), np.full((H, W, 3), (20, 200, 40), np.uint8)
    styled_a = texture(H, W, seed=5)
    stabiliser(shot_a, styled_a)
    held = stabiliser(shot_a, np.clip(styled_a.astype(int) + 4, 0, 255).astype(np.uint8))
    assert np.array_equal(held, styled_a)  # same shot: held
    styled_b = np.clip(styled_a.astype(int) + 4, 0, 255).astype(np.uint8)  # within the tolerance of shot a's
    out = stabiliser(shot_b, styled_b)
    assert stabiliser.cuts == 1 and np.array_equal(out, styled_b)  # a cut: nothing carried over
    # The detector alone: the first frame is not a cut, a colour change is, the same picture again is not.
    detector = CutDetector()
    assert [detector(f) for f in (shot_a, shot_a, shot_b, shot_b)] == [False, False, True, False]
    assert detector.cuts == 1


def test_a_new_frame_size_restarts_and_bad_settings_are_refused() -> None:
    stabiliser = TemporalStabiliser()
    stabiliser(texture(H, W, 1), texture(H, W, 2))
    small = texture(H // 2, W // 2, 3)
    assert np.array_equal(stabiliser(texture(H // 2, W // 2, 1), small), small)
    with pytest.raises(ValueError, match="tolerance"):
        TemporalStabiliser(tolerance=-1)


def test_stabilised_conv_model_output_stays_within_the_tolerance(tmp_path: Path) -> None:
    """A real ONNX generator (seeded 3x3 conv + tanh) on a noisy static clip: every output pixel stays within
    the tolerance of the frame-by-frame stylization, and the output flickers far less."""
    stylizer = Stylizer(make_test_model(tmp_path / "conv.onnx", kind="conv"), threads=1)
    rng = np.random.default_rng(2)
    background = texture(H, W, seed=6).astype(np.float32)
    frames = [noisy(background, rng, 3.0) for _ in range(8)]
    plain = stylizer.run_array(np.stack(frames))
    stabiliser = TemporalStabiliser()
    stable = [stabiliser(f, s) for f, s in zip(frames, plain)]
    assert all(np.abs(a.astype(int) - b).max() <= TOLERANCE for a, b in zip(stable, plain))

    def flicker(seq: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(b.astype(int) - a).mean() for a, b in zip(seq, seq[1:])]))

    assert flicker(list(plain)) > 1.0  # the generator does answer the noise
    assert flicker(stable) < 0.2 * flicker(list(plain))
