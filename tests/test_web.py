"""The web page (serve.web): in a real headless Chromium, and its handlers on real files.

The browser test starts the page on 127.0.0.1 inside this process, uploads a photo, picks a style,
waits for the result, fetches the result image from the page and checks it equals the Stylizer's
output for that photo pixel for pixel; then uploads a file that is not an image and reads the message.
It skips with the reason where Chromium cannot be installed (see tests/browser.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the web page needs the `web` extra (gradio)")

import av  # noqa: E402
from browser import choose, chrome, fetch, free_port, page_text, wait_until, why_no_browser  # noqa: E402
from media import texture, write_h264  # noqa: E402
from onnx_models import make_test_model  # noqa: E402
from PIL import Image  # noqa: E402

from cyclegan.contract.images import open_image  # noqa: E402
from serve.hub import ModelSourceError  # noqa: E402
from serve.stylizer import Stylizer  # noqa: E402
from serve.web import STYLIZE_GROUP, StylePage, WebSettings, build_page, launch, load_styles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def photo(path: Path, width: int = 333, height: int = 250, seed: int = 3) -> Path:
    """A JPEG with structure (gradient, blocks, noise): odd size, so the stylizer pads and crops."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    base[40:120, 60:200] = rng.uniform(0, 255, 3)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    make_test_model(folder / "cartoon.onnx", kind="permute", max_side=256)
    make_test_model(folder / "monet.onnx", kind="conv", target_domain="monet", max_side=256)
    return folder


@pytest.fixture(scope="module")
def settings(models: Path) -> WebSettings:
    return WebSettings(models=(str(models),), port=free_port(), max_video_seconds=3)


@pytest.fixture(scope="module")
def page(settings: WebSettings) -> StylePage:
    return StylePage(load_styles(settings), settings)


# ------------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def server(settings: WebSettings):
    demo = build_page(load_styles(settings), settings)
    launch(demo, settings, block=False)
    try:
        yield f"http://{settings.host}:{settings.port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    browser = chrome(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield browser
    finally:
        browser.quit()


def test_page_stylizes_a_photo_exactly_and_explains_a_bad_file(
    server: str, driver, models: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    def css(selector: str):
        return driver.find_elements(By.CSS_SELECTOR, selector)

    driver.get(server)
    upload = wait_until(lambda: css("#photo-input input[type=file]"), 30, "the photo upload box")[0]
    assert "CycleGAN styles" in driver.title
    choose(driver, "#style", "photo → monet")
    wait_until(lambda: "photo → monet" in css("#style-card")[0].text, 10, "the style's card text")

    src = photo(tmp_path / "holiday.jpg")
    upload.send_keys(str(src))
    wait_until(lambda: css("#input-preview img"), 30, "the input preview")
    css("#stylize-button")[0].click()
    result = wait_until(
        lambda: [img for img in css("#output-image img") if "holiday_monet.png" in (img.get_attribute("src") or "")],
        60,
        "the stylized image",
    )[0]
    driver.save_screenshot(str(tmp_path / "web.png"))
    assert Image.open(tmp_path / "web.png").size[0] > 0

    got = Image.open(io.BytesIO(fetch(result.get_attribute("src"))))
    expected = Stylizer(models / "monet.onnx").stylize(open_image(src))
    assert got.format == "PNG" and got.size == expected.size == (256, 192)
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(expected))
    assert "256 × 192 px" in page_text(driver)

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing an image decoder could use")
    clear = wait_until(lambda: css("#photo-input button[aria-label='Clear']"), 10, "the upload box's clear button")
    clear[0].click()
    wait_until(lambda: css("#photo-input input[type=file]"), 10, "an empty upload box")[0].send_keys(str(bad))
    wait_until(lambda: "broken.png: " in page_text(driver), 30, "the message about the bad file")
    assert "not an image" in page_text(driver) or "cannot read" in page_text(driver), page_text(driver)


# ------------------------------------------------------------------------------------------- handlers


def test_several_photos_skip_bad_files_and_name_them(page: StylePage, models: Path, tmp_path: Path) -> None:
    good = photo(tmp_path / "a.jpg", 64, 48)
    bad = tmp_path / "b.png"
    bad.write_text("not an image")
    with pytest.warns(
        UserWarning, match=r"1 of 2 files skipped\. b\.png: not an image"
    ):  # gr.Warning outside a request
        results = page.stylize_photos([str(good), str(bad)], "cartoon")
    assert [caption for _, caption in results] == ["a.jpg"]
    expected = Stylizer(models / "cartoon.onnx").stylize(open_image(good))
    assert np.array_equal(np.asarray(Image.open(results[0][0])), np.asarray(expected))
    with pytest.raises(gr.Error, match="b.png"):
        page.stylize_photos([str(bad)], "cartoon")
    with pytest.raises(gr.Error, match="Upload one or more photos"):
        page.stylize_photos([], "cartoon")


def test_photo_errors_are_messages(page: StylePage, tmp_path: Path) -> None:
    with pytest.raises(gr.Error, match="Upload a photo first"):
        page.stylize_photo(None, "cartoon")
    with pytest.raises(gr.Error, match="Pick a style"):
        page.stylize_photo(str(photo(tmp_path / "p.jpg", 32, 32)), "no-such-style")
    big = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000)).save(big)  # 12 MP, over a 10 MP limit
    strict = StylePage(list(page.styles.values()), WebSettings(models=("x",), max_pixels=10_000_000))
    with pytest.raises(gr.Error, match=r"big.png: .*over the limit of 10.0 megapixels"):
        strict.stylize_photo(str(big), "cartoon")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(photo(tmp_path / "whole.jpg").read_bytes()[:600])
    with pytest.raises(gr.Error, match="cut.jpg: .*(truncated|cannot read)"):
        page.preview(str(truncated), "cartoon")


def test_video_is_stylized_and_bad_videos_are_explained(page: StylePage, models: Path, tmp_path: Path) -> None:
    clip = write_h264(tmp_path / "clip.mp4", [texture(48, 64, i) for i in range(6)], fps=6)
    out = Path(page.stylize_clip(str(clip), "cartoon"))
    assert out.name == "clip_cartoon.mp4"
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    long_clip = write_h264(tmp_path / "long.mp4", [texture(16, 16, i % 3) for i in range(30)], fps=6)  # 5 s > 3 s
    with pytest.raises(gr.Error, match=r"long.mp4 is 5 s long; this page takes clips up to 3 s"):
        page.stylize_clip(str(long_clip), "cartoon")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    with pytest.raises(gr.Error, match="notes.mp4"):
        page.stylize_clip(str(not_video), "cartoon")


def test_concurrency_is_bounded_by_one_group_and_a_queue(settings: WebSettings) -> None:
    limited = WebSettings(models=settings.models, workers=2, queue_size=5)
    demo = build_page(load_styles(limited), limited)
    stylizing = [fn for fn in demo.fns.values() if fn.concurrency_id == STYLIZE_GROUP]
    assert len(stylizing) == 3  # photo, several photos, video
    assert all(fn.concurrency_limit == 2 for fn in stylizing)
    assert demo._queue.max_size == 5
    assert all(
        s.stylizer.session.get_session_options().intra_op_num_threads == limited.threads_per_worker
        for s in load_styles(limited)
    )


def test_settings_and_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--workers 0 must be at least 1.*--max-upload-mb nan"):
        WebSettings(workers=0, max_upload_mb=float("nan"))
    with pytest.raises(ModelSourceError, match="no such model file or folder"):
        load_styles(WebSettings(models=(str(tmp_path / "missing"),)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match=r"no \*.onnx models in"):
        load_styles(WebSettings(models=(str(tmp_path / "empty"),)))


def test_cli_web_reports_bad_models_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from serve.cli import cli

    result = CliRunner().invoke(cli, ["web", "--models", str(tmp_path / "nothing-here")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: no such model file or folder")


def test_style_titles_name_models_that_share_domains() -> None:
    from cyclegan.contract.card import GeneratorCard, style_titles

    monet, cartoon = GeneratorCard("resnet_9blocks", target_domain="monet"), GeneratorCard("unet_256")
    named = [("monet_a", monet), ("monet_b", monet), ("cartoon", cartoon)]
    assert style_titles(named, arrow="→") == ["A → monet (monet_a)", "A → monet (monet_b)", "A → B"]
    assert monet.architecture == "ResNet 9 blocks, 64 filters, instance norm"
    assert GeneratorCard("unet_256", ngf=32, norm="batch", use_dropout=True).architecture == (
        "U-Net 256, 32 filters, batch norm, dropout"
    )
