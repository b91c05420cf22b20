"""cyclegan images: every Pillow mode to upright RGB, corrupt files reported, de-duplication."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from media import texture
from PIL import Image

from cyclegan.cli import main as cyclegan_main
from cyclegan.frames.pipeline import import_images


def _photos(root: Path) -> dict[str, Path]:
    """One photo per awkward case, in a nested folder tree."""
    (root / "nested/deeper").mkdir(parents=True)
    paths = {}
    # landscape pixels + EXIF orientation 6 ("rotate 90 clockwise to display"): upright is portrait
    exif_image = Image.fromarray(texture(40, 60, 1))
    exif = exif_image.getexif()
    exif[0x0112] = 6
    paths["exif"] = root / "exif.jpg"
    exif_image.save(paths["exif"], exif=exif, quality=95)
    paths["cmyk"] = root / "nested/cmyk.jpg"
    Image.fromarray(texture(48, 64, 2)).convert("CMYK").save(paths["cmyk"], quality=95)
    rgba = np.dstack([texture(48, 64, 3), np.full((48, 64), 255, np.uint8)])
    rgba[:, :10, 3] = 0  # a transparent strip: composited over white
    paths["rgba"] = root / "nested/rgba.png"
    Image.fromarray(rgba, "RGBA").save(paths["rgba"])
    paths["sixteen"] = root / "nested/deeper/sixteen.png"
    Image.fromarray(texture(48, 64, 4)[..., 0].astype(np.uint16) * 257).save(paths["sixteen"])
    paths["palette"] = root / "palette.png"
    Image.fromarray(texture(48, 64, 5)).convert("P", palette=Image.Palette.ADAPTIVE).save(paths["palette"])
    paths["copy"] = root / "zz_copy_of_palette.png"  # sorted after palette.png, so it is the duplicate
    with Image.open(paths["palette"]) as palette:
        palette.save(paths["copy"], optimize=True)  # other bytes, same picture
    paths["corrupt"] = root / "broken.jpg"
    paths["corrupt"].write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (root / "readme.txt").write_text("ignored: not an image extension")
    return paths


def test_import_converts_every_mode_and_reports_corrupt_files(tmp_path):
    photos = _photos(tmp_path / "src")
    out = tmp_path / "ds"
    summary = import_images([tmp_path / "src"], out, "A", name="photo", log=lambda message: None)
    print(summary.format())
    assert [source for source, _ in summary.failed] == [str(photos["corrupt"])]
    assert "not a readable image" in summary.failed[0][1]
    assert summary.kept == 5 and dict(summary.dropped) == {"duplicate": 1}
    written = {p.name: p for p in (out / "trainA").iterdir()}
    assert set(written) == {"exif.jpg", "cmyk.jpg", "rgba.jpg", "sixteen.jpg", "palette.jpg"}
    for path in written.values():
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.format == "JPEG"
    with Image.open(written["exif.jpg"]) as image:
        assert image.size == (40, 60)  # EXIF orientation applied
    with Image.open(written["rgba.jpg"]) as image:
        assert np.asarray(image)[:, :8].min() > 240  # transparent strip became white, not black
    with Image.open(written["sixteen.jpg"]) as image:
        gray = np.asarray(image)[..., 0].astype(int)
        assert abs(gray.mean() - texture(48, 64, 4)[..., 0].mean()) < 3  # scaled, not clipped to 255
    assert json.loads((out / "dataset.json").read_text()) == {"domains": {"A": "photo"}}

    again = import_images([tmp_path / "src"], out, "A", log=lambda message: None)
    assert again.kept == 0 and len(again.skipped) == 6  # idempotent: the 6 readable images were seen


def test_images_cli_exit_code_resize_and_split(tmp_path):
    _photos(tmp_path / "src")
    out = tmp_path / "ds"
    args = [
        "images",
        str(tmp_path / "src"),
        "--out",
        str(out),
        "--domain",
        "A",
        "--resize",
        "32",
        "--test-ratio",
        "0.5",
        "--no-progress",
    ]
    result = CliRunner().invoke(cyclegan_main, args)
    assert result.exit_code == 1, result.output  # the corrupt file
    assert "broken.jpg" in result.output and "5 kept" in result.output
    files = sorted(out.glob("t*A/*.jpg"))
    assert len(files) == 5 and {f.parent.name for f in files} == {"trainA", "testA"}
    for path in files:
        with Image.open(path) as image:
            assert min(image.size) == 32


def test_cyclegan_data_reads_what_frames_and_images_write(tmp_path):
    """The hand-off: a dataset built by `cyclegan images` (A) and `cyclegan frames` (B) trains as is."""
    from media import write_h264

    from cyclegan.config import DataConfig
    from cyclegan.contract.layout import read_domain_names
    from cyclegan.data import UnpairedImageDataset
    from cyclegan.frames.pipeline import build_from_videos

    _photos(tmp_path / "src")
    video = write_h264(tmp_path / "toon.mkv", [texture(64, 96, 900 + i // 2) for i in range(8)], 2)
    out = tmp_path / "ds"
    import_images([tmp_path / "src"], out, "A", name="photo", log=lambda message: None)
    assert build_from_videos([video], out, "B", name="cartoon").kept == 4
    assert read_domain_names(out) == {"A": "photo", "B": "cartoon"}
    cfg = DataConfig(root=str(out), load_size=36, crop_size=32)
    dataset = UnpairedImageDataset(out, "train", cfg).validate()
    item = dataset[0]
    assert len(dataset) == 5 and tuple(item["A"].shape) == (3, 32, 32) and tuple(item["B"].shape) == (3, 32, 32)
