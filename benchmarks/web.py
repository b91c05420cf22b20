"""The web page's time to first result, in a real headless Chromium, and the README's screenshot.

Serves the page (serve.web) on 127.0.0.1 with a model of the demo's architecture (ResNet-6, 16 filters,
instance norm; random N(0, 0.02) weights exported with `cyclegan export`'s code: the time does not depend on
the weights) and drives Chromium with the browser tests' code (tests/browser.py). Each run opens the page
afresh, uploads a photo whose longer side is ``--side`` px, clicks Stylize and waits until the result is shown:

* page ready: navigation until the upload box is there;
* preview: upload until the input preview shows;
* result: click until the stylized image is in the page (inference, PNG encoding, transfer, display);
* first result: navigation until the stylized image shows -- what a visitor waits.

``--screenshot docs/web.png`` also writes the page as a visitor sees it on a public-domain photo, with the model
``--screenshot-model`` names (e.g. the demo's) or else a seeded 3x3 convolution from tests/onnx_models.py.

    python benchmarks/web.py --runs 3                         # ~1 min on 2 cores, needs the `web` extra
    python benchmarks/web.py --runs 1 --screenshot docs/web.png
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from PIL import Image  # noqa: E402


def demo_architecture_model(out_dir: Path) -> Path:
    """ResNet-6, ngf 16, instance norm (configs/tiny_cpu.yaml), random weights, exported and verified."""
    import torch

    from cyclegan.contract.card import GeneratorCard
    from cyclegan.generator_io import save_generator
    from cyclegan.models import init_weights, make_generator
    from export.pipeline import ExportOptions, export_source

    torch.manual_seed(0)
    net = init_weights(make_generator("resnet_6blocks", ngf=16, norm="instance"), "normal", 0.02)
    card = GeneratorCard(
        generator="resnet_6blocks",
        ngf=16,
        source_domain="photo",
        target_domain="cartoon",
        train_size=64,
        run_name="demo-architecture",
    )
    weights = save_generator(out_dir / "demo.safetensors", net, card)
    (report,) = export_source(weights, out_dir, ExportOptions(max_side=1024, bench_side=0))
    return report.variants[0].path


def test_photo(path: Path, side: int) -> Path:
    """A public-domain photo (scikit-image's coffee, the `demo` extra) scaled to ``side`` px, as JPEG."""
    try:
        from cyclegan.demo_assets import shipped_photo

        image = Image.open(shipped_photo("scikit-image", "skimage/data/coffee.png")).convert("RGB")
    except Exception:  # no demo extra: a synthetic picture times the same
        from media import texture

        image = Image.fromarray(texture(400, 600, seed=1, block=24))
    scale = side / max(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    image.save(path, quality=92)
    return path


def time_runs(driver, url: str, photo: Path, style: str, runs: int) -> list[dict[str, float]]:
    from browser import choose, wait_until
    from selenium.webdriver.common.by import By

    def css(selector: str):
        return driver.find_elements(By.CSS_SELECTOR, selector)

    results = []
    for _ in range(runs):
        start = time.perf_counter()
        driver.get(url)
        upload = wait_until(lambda: css("#photo-input input[type=file]"), 60, "the upload box")[0]
        ready = time.perf_counter()
        choose(driver, "#style", style)
        chosen = time.perf_counter()
        upload.send_keys(str(photo))
        wait_until(lambda: css("#input-preview img"), 60, "the preview")
        previewed = time.perf_counter()
        css("#stylize-button")[0].click()
        clicked = time.perf_counter()
        wait_until(
            lambda: [i for i in css("#output-image img") if i.get_attribute("src") and i.get_property("complete")],
            120,
            "the result",
        )
        done = time.perf_counter()
        results.append(
            {
                "page_ready_s": ready - start,
                "preview_s": previewed - chosen,
                "result_s": done - clicked,
                "first_result_s": done - start - (chosen - ready),  # without the benchmark's own style pick
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side", type=int, default=1024, help="longer side of the uploaded photo")
    parser.add_argument("--screenshot", type=Path, default=None, help="write the page's screenshot here (PNG)")
    parser.add_argument(
        "--screenshot-model",
        type=Path,
        default=None,
        help="an exported .onnx (e.g. the demo's) to show in the screenshot instead of the small test model",
    )
    args = parser.parse_args()

    from browser import chrome, free_port, why_no_browser
    from onnx_models import make_test_model

    from cyclegan.contract.images import open_image
    from serve.stylizer import Stylizer
    from serve.web import WebSettings, build_page, launch, load_styles

    reason = why_no_browser()
    if reason:
        raise SystemExit(f"no browser: {reason}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = tmp / "models"
        demo = demo_architecture_model(models)
        shown = models / ("demo.onnx" if args.screenshot_model else "emboss.onnx")
        if args.screenshot_model:
            shutil.copyfile(args.screenshot_model, shown)
        else:
            make_test_model(shown, kind="conv", seed=1, target_domain="emboss", max_side=1024)
        photo = test_photo(tmp / "coffee.jpg", args.side)
        size = Image.open(photo).size
        settings = WebSettings(models=(str(models),), port=free_port())
        styles = load_styles(settings)
        titles = {style.key: style.label for style in styles}
        page = build_page(styles, settings)
        launch(page, settings, block=False)
        driver = chrome(tmp / "profile", width=1280, height=900)
        try:
            url = f"http://127.0.0.1:{settings.port}/"
            runs = time_runs(driver, url, photo, titles[demo.stem], args.runs)
            if args.screenshot:
                time_runs(driver, url, photo, titles[shown.stem], 1)
                time.sleep(0.5)  # let the result fade in
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.screenshot))
                print(f"wrote {args.screenshot}")
        finally:
            driver.quit()
            page.close()
        stylizer = Stylizer(demo, threads=settings.threads_per_worker)
        image = open_image(photo)
        stylizer.stylize(image)
        began = time.perf_counter()
        stylizer.stylize(image)
        alone = time.perf_counter() - began

    cpu = platform.processor() or platform.machine()
    print(f"page: ResNet-6 ngf=16 (demo architecture), photo {size[0]}x{size[1]} px, {cpu}")
    for key in ("page_ready_s", "preview_s", "result_s", "first_result_s"):
        values = [r[key] for r in runs]
        print(f"  {key:15s} first {values[0]:.2f} s, median {statistics.median(values):.2f} s ({len(values)} runs)")
    print(f"  Stylizer.stylize alone (warm, {settings.threads_per_worker} threads): {alone:.2f} s")


if __name__ == "__main__":
    main()
