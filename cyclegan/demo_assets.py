"""The demo's embedded default data, made on the spot with no download.

* **Domain B, "cartoon"**: a short video the project renders itself -- flat colours, thick black
  outlines, a few scenes with camera pans and cuts, a black intro and a static title card (so the
  frame filters and de-duplication have something to do) and a stereo audio track.
* **Domain A, "photo"**: real photographs shipped inside package wheels already installed by the
  ``demo`` extra (scikit-image's public-domain/CC0 sample photos and matplotlib's Grace Hopper
  portrait, US Navy, public domain). Training photos are cut into crops at several scales; whole
  held-out photos are kept for the contact sheet, and one is turned into a short pan-and-zoom clip.

Only numpy, Pillow and PyAV are used here (no torch), so the assets can also be made in the
slim serving environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from cyclegan.contract.errors import ToolkitError

# (distribution, path inside it, licence note). Train photos give crops; test photos stay whole.
TRAIN_PHOTOS = [
    ("scikit-image", "skimage/data/astronaut.png", "NASA, public domain"),
    ("scikit-image", "skimage/data/rocket.jpg", "NASA/Kim Shiflett, public domain"),
    ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "US Navy, public domain"),
]
TEST_PHOTOS = [
    ("scikit-image", "skimage/data/chelsea.png", "Stefan van der Walt, CC0"),
    ("scikit-image", "skimage/data/coffee.png", "Rachel Michetti, CC0"),
]

OUTLINE = (20, 20, 20)


class AssetError(ToolkitError):
    """A shipped photo could not be found (the ``demo`` extra is not installed)."""


def shipped_photo(distribution: str, relative: str) -> Path:
    """Path of a data file inside an installed wheel, found without importing the package."""
    try:
        path = Path(str(metadata.distribution(distribution).locate_file(relative)))
    except metadata.PackageNotFoundError:
        raise AssetError(
            f"the demo needs the '{distribution}' package for its sample photos: "
            "install the demo extra (`pip install -c constraints.txt -e '.[demo]'` or `make install`)"
        ) from None
    if not path.is_file():
        raise AssetError(f"{distribution} is installed but ships no {relative}")
    return path


# --------------------------------------------------------------------------- cartoon video


@dataclass(frozen=True)
class CartoonSpec:
    width: int = 320
    height: int = 240
    fps: int = 24
    scene_seconds: float = 6.0
    intro_seconds: float = 1.0  # black frames: dropped by the frame filters
    title_seconds: float = 2.0  # one static card: collapses to one frame under de-duplication
    audio: bool = True

    @property
    def scenes(self) -> int:
        return len(_SCENES)

    @property
    def duration(self) -> float:
        return self.intro_seconds + self.title_seconds + self.scenes * self.scene_seconds


def _outlined(draw: ImageDraw.ImageDraw, kind: str, box, fill, width: int = 3) -> None:
    getattr(draw, kind)(box, fill=fill, outline=OUTLINE, width=width)


def _meadow(draw: ImageDraw.ImageDraw, w: int, h: int, t: float) -> None:
    for i, colour in enumerate([(120, 200, 255), (150, 215, 255), (185, 230, 255)]):
        draw.rectangle([0, i * h // 6, w, (i + 1) * h // 6 + 1], fill=colour)
    draw.rectangle([0, h // 2, w, h], fill=(185, 230, 255))
    sun_x = int(w * 0.8 - 20 * t)
    _outlined(draw, "ellipse", [sun_x - 24, 20, sun_x + 24, 68], (255, 220, 60))
    shift = int(30 * t)
    for k, (colour, base) in enumerate([((90, 190, 90), 0.62), ((60, 160, 70), 0.75)]):
        pts = [(x, int(h * base + 18 * math.sin((x + shift * (k + 1)) / 40))) for x in range(-10, w + 11, 10)]
        _outlined(draw, "polygon", pts + [(w + 10, h + 5), (-10, h + 5)], colour)
    bx = int((t * 55) % (w + 60)) - 30
    by = int(h * 0.7 - abs(math.sin(t * 3.2)) * 70)
    _outlined(draw, "ellipse", [bx - 22, by - 22, bx + 22, by + 22], (230, 60, 60))
    for ex in (-8, 8):
        draw.ellipse([bx + ex - 5, by - 10, bx + ex + 5, by], fill=(255, 255, 255), outline=OUTLINE, width=2)
        draw.ellipse([bx + ex - 2, by - 6, bx + ex + 2, by - 2], fill=OUTLINE)


def _city(draw: ImageDraw.ImageDraw, w: int, h: int, t: float) -> None:
    draw.rectangle([0, 0, w, h], fill=(40, 40, 100))
    _outlined(draw, "ellipse", [40, 20, 80, 60], (250, 245, 200))
    pan = int(25 * t)
    rng = np.random.default_rng(7)
    x = -pan % 70 - 70
    while x < w + 70:
        bw, bh = int(rng.integers(40, 70)), int(rng.integers(60, 170))
        colour = tuple(int(c) for c in rng.integers(70, 160, size=3))
        _outlined(draw, "rectangle", [x, h - bh, x + bw, h + 3], colour)
        for wy in range(h - bh + 10, h - 10, 18):
            for wx in range(x + 8, x + bw - 10, 14):
                lit = (wx * 7 + wy * 3 + int(t * 2)) % 5 < 2
                draw.rectangle([wx, wy, wx + 6, wy + 8], fill=(255, 230, 90) if lit else (30, 30, 60))
        x += bw + 6


def _sea(draw: ImageDraw.ImageDraw, w: int, h: int, t: float) -> None:
    draw.rectangle([0, 0, w, h // 2], fill=(255, 190, 120))
    _outlined(draw, "ellipse", [w // 2 - 35, h // 2 - 35, w // 2 + 35, h // 2 + 35], (255, 120, 60))
    draw.rectangle([0, h // 2, w, h], fill=(40, 110, 200))
    for row in range(6):
        y = h // 2 + 12 + row * 18
        off = (t * 40 * (1 + row * 0.3)) % 40
        for x0 in np.arange(-40 + off, w, 40):
            draw.arc([x0, y - 6, x0 + 30, y + 6], 200, 340, fill=(230, 240, 255), width=3)
    bx = int(w * 0.2 + 30 * t)
    by = int(h * 0.62 + 5 * math.sin(t * 2.5))
    _outlined(draw, "polygon", [(bx - 40, by), (bx + 40, by), (bx + 28, by + 20), (bx - 28, by + 20)], (140, 80, 40))
    _outlined(draw, "polygon", [(bx, by - 55), (bx, by - 4), (bx + 34, by - 4)], (250, 250, 250))
    draw.line([bx, by - 58, bx, by], fill=OUTLINE, width=3)


def _forest(draw: ImageDraw.ImageDraw, w: int, h: int, t: float) -> None:
    draw.rectangle([0, 0, w, h], fill=(200, 235, 200))
    draw.rectangle([0, int(h * 0.72), w, h], fill=(120, 90, 50))
    pan = int(35 * t)
    for i in range(-1, w // 50 + 2):
        x = i * 50 - pan % 50
        draw.rectangle([x + 18, int(h * 0.45), x + 30, int(h * 0.78)], fill=(110, 70, 30), outline=OUTLINE, width=2)
        top = int(h * 0.12 + 15 * ((i + pan // 50) % 3))
        _outlined(
            draw,
            "polygon",
            [(x + 24, top), (x - 4, int(h * 0.5)), (x + 52, int(h * 0.5))],
            (30, 130 + 20 * (i % 2), 60),
        )
    fx = int(w * 0.5 + 80 * math.sin(t * 1.4))
    fy = int(h * 0.35 + 30 * math.cos(t * 2.1))
    _outlined(draw, "ellipse", [fx - 12, fy - 8, fx + 12, fy + 8], (250, 150, 200), width=2)


_SCENES: list[Callable[[ImageDraw.ImageDraw, int, int, float], None]] = [_meadow, _city, _sea, _forest]


def _title_card(w: int, h: int) -> Image.Image:
    image = Image.new("RGB", (w, h), (250, 210, 80))
    draw = ImageDraw.Draw(image)
    _outlined(draw, "rounded_rectangle", [w // 8, h // 3, w * 7 // 8, h * 2 // 3], (240, 90, 70), width=4)
    for k in range(5):
        x = w // 8 + 20 + k * (w * 3 // 4 - 40) // 5
        _outlined(draw, "ellipse", [x, h // 2 - 12, x + 24, h // 2 + 12], (255, 255, 255))
    return image


def cartoon_frames(spec: CartoonSpec) -> Iterator[Image.Image]:
    """Every frame of the cartoon, in order."""
    w, h = spec.width, spec.height
    black = Image.new("RGB", (w, h), (0, 0, 0))
    for _ in range(round(spec.intro_seconds * spec.fps)):
        yield black
    title = _title_card(w, h)
    for _ in range(round(spec.title_seconds * spec.fps)):
        yield title
    for scene in _SCENES:
        for i in range(round(spec.scene_seconds * spec.fps)):
            image = Image.new("RGB", (w, h))
            scene(ImageDraw.Draw(image), w, h, i / spec.fps)
            yield image


def write_video(
    path: Path,
    frames: Iterator[Image.Image],
    *,
    fps: int,
    size: tuple[int, int],
    duration: float,
    audio: bool = True,
    crf: int = 20,
) -> Path:
    """Encode RGB frames as H.264 (yuv420p) in MP4, with an optional AAC tone track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    with av.open(str(tmp), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), "preset": "veryfast"}
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=44100)
            sound.layout = "stereo"
        for image in frames:
            frame = av.VideoFrame.from_image(image)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            _write_tone(container, sound, duration)
    tmp.replace(path)
    return path


def _write_tone(container: av.container.OutputContainer, stream: av.AudioStream, duration: float) -> None:
    rate, chunk = 44100, 1024
    total = int(duration * rate)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.2 * np.sin(2 * np.pi * 440 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def make_cartoon(path: Path, spec: CartoonSpec = CartoonSpec()) -> Path:
    return write_video(
        path,
        cartoon_frames(spec),
        fps=spec.fps,
        size=(spec.width, spec.height),
        duration=spec.duration,
        audio=spec.audio,
    )


# --------------------------------------------------------------------------- photos


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def photo_crops(image: Image.Image, count: int, size: int, seed: int) -> list[Image.Image]:
    """Random square crops at several scales (30-100% of the short side), resized to ``size``."""
    rng = np.random.default_rng(seed)
    w, h = image.size
    short = min(w, h)
    crops = []
    for _ in range(count):
        side = int(short * rng.uniform(0.3, 1.0))
        x = int(rng.integers(0, w - side + 1))
        y = int(rng.integers(0, h - side + 1))
        crop = image.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crops.append(crop)
    return crops


def make_photos(train_dir: Path, test_dir: Path, *, crops_per_photo: int, crop_size: int, test_side: int) -> None:
    """Write training crops of the train photos and the whole test photos (longer side = test_side)."""
    train_dir.mkdir(parents=True, exist_ok=True)
    test_dir.mkdir(parents=True, exist_ok=True)
    for index, (dist, rel, _) in enumerate(TRAIN_PHOTOS):
        stem = Path(rel).stem
        for k, crop in enumerate(photo_crops(_rgb(shipped_photo(dist, rel)), crops_per_photo, crop_size, seed=index)):
            crop.save(train_dir / f"{stem}_{k:03d}.jpg", quality=95)
    for dist, rel, _ in TEST_PHOTOS:
        image = _rgb(shipped_photo(dist, rel))
        image.thumbnail((test_side, test_side), Image.Resampling.LANCZOS)
        image.save(test_dir / f"{Path(rel).stem}.jpg", quality=95)


def make_photo_clip(
    photo: Path, path: Path, *, seconds: float = 3.0, fps: int = 12, size: tuple[int, int] = (160, 120)
) -> Path:
    """A slow pan-and-zoom over a photo: the clip the demo stylizes with the video path."""
    image = _rgb(photo)
    w, h = image.size
    n = round(seconds * fps)

    def frames() -> Iterator[Image.Image]:
        for i in range(n):
            zoom = 1.0 - 0.25 * i / max(n - 1, 1)
            cw, ch = int(w * zoom), int(h * zoom)
            x = int((w - cw) * i / max(n - 1, 1))
            yield image.crop((x, (h - ch) // 2, x + cw, (h - ch) // 2 + ch)).resize(size, Image.Resampling.LANCZOS)

    return write_video(path, frames(), fps=fps, size=size, duration=seconds, audio=True)
