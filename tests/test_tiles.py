"""Seam-free tiles (cyclegan.contract.tiles, export.tiles, serve.tiles) on a real exported ResNet.

One small instance-norm ResNet (6 blocks, 8 filters, seeded weights) is exported once with its stats/tiles
companions (the export checks their parity with PyTorch); the tests run it with onnxruntime.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from fake_bot_api import FakeBotApi
from media import texture, write_h264
from onnx_models import make_test_model
from PIL import Image
from synthetic import random_scene
from test_bot import TOKEN, decode, only_reply, running_bot, settings_for
from tiled_models import export_small_resnet

from cyclegan.contract.card import CardError, GeneratorCard
from cyclegan.contract.tiles import DEFAULT_TILE, geometry, grid, is_companion, weights, windows
from serve.hub import resolve_models
from serve.stylizer import Stylizer
from serve.tiles import StatsSmoother, Tiler
from serve.video import VideoInputError, stylize_video


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    variant = export_small_resnet(tmp_path_factory.mktemp("tiles"))
    assert [p.name for p in variant.companions] == ["small_A2B.stats.onnx", "small_A2B.tiles.onnx"]
    return variant.path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def scene(height: int, width: int, seed: int) -> np.ndarray:
    big = random_scene(np.random.default_rng(seed), max(height, width))
    return np.ascontiguousarray(big[:height, :width])


def test_geometry_covers_every_pixel_with_weights_summing_to_one() -> None:
    geo = geometry(256, 4)
    for length in (8, 256, 260, 500, 2048, 6000):
        spans = windows(length, geo)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(s % 4 == 0 and (e - s) % 4 == 0 and e - s <= 256 for s, e in spans)
        assert all(a[1] - b[0] >= geo.overlap for a, b in zip(spans, spans[1:]))
        total = np.zeros(length)
        for (s, e), w in zip(spans, weights(spans, length, geo)):
            total[s:e] += w
        assert np.allclose(total, 1.0, atol=1e-5)


def test_grid_takes_the_least_window_area_within_the_pixel_budget() -> None:
    geo = geometry(1024, 4)
    rows, cols = grid(2048, 2048, geo)  # 2 x 3 windows of 1048 x 716 px, not 3 x 3 of 716 px
    assert (len(rows), len(cols)) == (2, 3) and rows[0] == (0, 1048) and cols[0] == (0, 716)
    for height, width in ((300, 400), (1028, 1028), (2048, 2048), (4000, 6000), (96, 5000)):
        rows, cols = grid(height, width, geo)
        assert rows[0][0] == 0 and rows[-1][1] == height and cols[0][0] == 0 and cols[-1][1] == width
        assert (rows[0][1] - rows[0][0]) * (cols[0][1] - cols[0][0]) <= 1024 * 1024
        square = [windows(n, geo) for n in (height, width)]
        area = sum(e - s for s, e in rows) * sum(e - s for s, e in cols)
        assert area <= sum(e - s for s, e in square[0]) * sum(e - s for s, e in square[1])
    # The default: the 1024 px threshold with windows of at most 960x960 pixels (the memory at 24 MP).
    rows, cols = grid(4000, 6000, geometry(None, 4))
    assert (len(rows), len(cols)) == (5, 6) and (rows[0][1] - rows[0][0]) * (cols[0][1] - cols[0][0]) <= 960 * 960


def test_card_lists_companions_and_old_cards_still_load(model: Path) -> None:
    card = Stylizer(model).card
    assert (card.stats_model, card.tiles_model) == ("small_A2B.stats.onnx", "small_A2B.tiles.onnx")
    assert card.stats_size == 2 * (8 + 16 + 32 + 12 * 32 + 16 + 8)  # mean and variance of every InstanceNorm
    old = GeneratorCard.from_json('{"format": "cyclegan-toolkit/generator@1", "generator": "resnet_9blocks"}')
    assert old.stats_model is None and old.tiles_model is None
    for bad in ({"stats_model": "../x.onnx", "tiles_model": "y.onnx", "stats_size": 4}, {"stats_model": "x.onnx"}):
        with pytest.raises(CardError):
            GeneratorCard(generator="resnet_9blocks", **bad)
    # Model listings (bot, web page, `stylize` folders) skip the companions.
    assert resolve_models([model.parent]) == [model]
    assert is_companion(model.with_name(card.stats_model)) and not is_companion(model)


def test_tiles_match_the_whole_picture_and_naive_tiles_do_not(model: Path) -> None:
    image = scene(300, 400, seed=1)
    whole = Stylizer(model, tile=0).run_array(image[None])[0]
    tiled_stylizer = Stylizer(model, tile=192)  # a budget of 192x192 px: 2 x 3 windows, many borders
    assert tiled_stylizer.needs_tiles(300, 400) and tiled_stylizer.can_tile
    tiler = tiled_stylizer._tiler(True)
    tiled = tiler.run(image, tiled_stylizer.picture_stats(image))
    assert tiler.windows_run == 6 and tiled.shape == whole.shape
    assert np.array_equal(tiled, tiled_stylizer.run_array(image[None])[0])  # what the API does on its own
    # Naive tiles: the plain model in the same windows, each normalised with its own statistics.
    naive = Tiler(tiled_stylizer.card, tiled_stylizer.session, tiler.geometry, False).run(image)
    assert psnr(tiled, whole) >= 40.0, psnr(tiled, whole)
    assert psnr(naive, whole) < psnr(tiled, whole) - 5


def test_models_that_cannot_tile_are_downscaled_with_a_note(tmp_path: Path, model: Path) -> None:
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(model.read_bytes())  # its card names companions that are not next to it
    notes: list[str] = []
    stylizer = Stylizer(lone, tile=256, note=notes.append)
    out = stylizer.stylize(Image.fromarray(scene(300, 400, seed=2)), max_side=0)
    assert out.size == (256, 192)
    assert len(notes) == 1 and "small_A2B.stats.onnx" in notes[0] and "downscaled" in notes[0]
    # U-Nets: their receptive field is the whole image, so they never tile.
    unet = make_test_model(tmp_path / "unet.onnx", generator="unet_256", size_multiple=256)
    notes.clear()
    out = Stylizer(unet, note=notes.append).stylize(Image.new("RGB", (1600, 1200)), max_side=0)
    assert out.size == (1182, 886) and len(notes) == 1  # 1024 x 1024 pixels at most
    assert notes[0].startswith("unet_256 cannot be tiled seam-free (its receptive field is the whole image)")


def test_scene_cut_restarts_the_shared_statistics() -> None:
    smoother = StatsSmoother(decay=0.5)
    a, b = texture(48, 64, seed=1), np.full((48, 64, 3), (20, 200, 40), np.uint8)
    s1, s2, s3 = (np.full((1, 4), v, np.float32) for v in (1.0, 3.0, 10.0))
    assert np.allclose(smoother.update(a, s1), 1.0)
    assert np.allclose(smoother.update(a, s2), 2.0)  # same shot: averaged
    assert smoother.cuts == 0
    assert np.allclose(smoother.update(b, s3), 10.0)  # a cut: the new shot's own statistics
    assert smoother.cuts == 1


def test_stable_video_and_the_frame_size_limit(model: Path, tmp_path: Path) -> None:
    frames = [texture(48, 64, seed=1)] * 4 + [np.full((48, 64, 3), (20, 200, 40), np.uint8)] * 3
    src = write_h264(tmp_path / "clip.mp4", frames, fps=6)
    stylizer = Stylizer(model)
    result = stylize_video(stylizer, src, tmp_path / "out" / "clip.mp4", stable=True, progress=False)
    assert result.stable and result.cuts == 1 and result.frames == 7
    plain = stylize_video(stylizer, src, tmp_path / "out" / "plain.mp4", stable=False, progress=False)
    assert not plain.stable
    with av.open(str(result.path)) as a, av.open(str(plain.path)) as b:
        first = [next(c.decode(video=0)).to_ndarray(format="rgb24") for c in (a, b)]
    assert psnr(*first) > 30  # the first frame of a shot is the stylized frame itself
    # Frames over the pixel limit are refused before decoding, and nothing is written.
    with pytest.raises(VideoInputError, match=r"64x48 \(0.0 MP\) are over the limit"):
        stylize_video(stylizer, src, tmp_path / "capped" / "clip.mp4", max_pixels=1000, progress=False)
    assert not (tmp_path / "capped" / "clip.mp4").exists()
    # The default longest side for videos.
    big = write_h264(tmp_path / "big.mp4", [texture(720, 1600, seed=3)] * 2, fps=2)
    assert stylize_video(stylizer, big, tmp_path / "out" / "big.mp4", progress=False).size == (1280, 576)


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_stable_video_flickers_less_and_stays_close_to_frame_by_frame(model: Path, tmp_path: Path) -> None:
    """A real H.264 clip (static camera, sensor noise, a disc moving across) through this ResNet: the default
    (stable) output changes from frame to frame far less than frame-by-frame, every frame within 30 dB of it."""
    rng = np.random.default_rng(5)
    background = scene(96, 128, seed=6).astype(np.float32)
    yy, xx = np.mgrid[0:96, 0:128]
    frames = []
    for t in range(16):
        frame = background.copy()
        frame[(xx - (20 + 5 * t)) ** 2 + (yy - 48) ** 2 < 14**2] = (230, 40, 40)
        frames.append(np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8))
    src = write_h264(tmp_path / "clip.mp4", frames, fps=10)
    stylizer = Stylizer(model, threads=1)
    stable = stylize_video(stylizer, src, tmp_path / "stable.mp4", crf=12, progress=False)  # stable: the default
    plain = stylize_video(stylizer, src, tmp_path / "plain.mp4", stable=False, crf=12, progress=False)
    assert stable.stable and not plain.stable and stable.cuts == 0
    a, b = decoded(stable.path), decoded(plain.path)
    assert len(a) == len(b) == 16

    def change(seq: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(y.astype(np.float32) - x).mean() for x, y in zip(seq, seq[1:])]))

    assert change(a) < 0.75 * change(b), (change(a), change(b))  # measured 0.68 (random weights answer noise hard)
    assert min(psnr(x, y) for x, y in zip(a, b)) >= 30.0, [round(psnr(x, y), 1) for x, y in zip(a, b)]  # measured 32.6


def test_bot_returns_a_large_picture_as_a_full_resolution_file(model: Path) -> None:
    width, height = DEFAULT_TILE + 100, DEFAULT_TILE  # over the tile budget: runs in tiles
    image = scene(height, width, seed=4)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, model.parent, max_side=256)
        with running_bot(settings):
            api.push_updates(api.document_message(5, buffer.getvalue(), file_name="big.png", mime_type="image/png"))
            reply = only_reply(api, 5, timeout=120)
    assert reply.method == "sendDocument"
    got = decode(reply.upload("document").data)
    assert got.shape == (height, width, 3)
    stylizer = Stylizer(model)
    assert stylizer.needs_tiles(height, width) and stylizer.can_tile
    want = stylizer.run_array(image[None])[0]  # the tiled path (its fidelity: the tests above)
    assert int(np.abs(got - want).max()) <= 1
