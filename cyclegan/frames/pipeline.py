"""Build a dataset domain from videos (:func:`build_from_videos`) or photos (:func:`import_images`).

Per frame: letterbox crop (optional) -> quality scores -> filter -> dHash de-duplication ->
resize/crop -> train/test split by name hash -> file + manifest record. A failing input is
reported in the :class:`Summary` and the others are still processed.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from cyclegan.contract.files import is_within
from cyclegan.contract.images import DEFAULT_MAX_PIXELS, ImageInputError, is_image_name, open_image
from cyclegan.contract.layout import DOMAINS, SPLITS
from cyclegan.contract.video import is_video_name
from cyclegan.frames.dedup import Deduper, dhash
from cyclegan.frames.geometry import crop, letterbox_box, resize_shorter
from cyclegan.frames.quality import QualityFilter, analysis_gray, score
from cyclegan.frames.store import DatasetStore, content_id, fingerprint, safe_stem, split_for
from cyclegan.frames.video import Sampling, VideoError, VideoReader

FORMATS = ("jpg", "png")

Log = Callable[[str], None]


@dataclass(frozen=True)
class FrameOptions:
    """Everything that decides which frames are written and how (hashed into the fingerprint)."""

    sampling: Sampling = field(default_factory=lambda: Sampling(every_seconds=1.0))
    quality: QualityFilter = field(default_factory=QualityFilter)
    dedup: str = "global"  # "off" | "consecutive" | "global"
    hash_distance: int = 4  # Hamming distance (of 64 bits) at or below which frames are duplicates
    letterbox: bool = False
    resize: int | None = None  # shorter side in px
    crop: int | None = None  # square crop size in px
    crop_mode: str = "center"  # "center" | "random"
    fmt: str = "jpg"
    jpeg_quality: int = 95
    test_ratio: float = 0.0
    keyframes_only: bool = False  # decode keyframes only (fastest; sample times snap to keyframes)

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.fmt!r}")
        if not 0.0 <= self.test_ratio < 1.0:
            raise ValueError(f"test_ratio must be in [0, 1), got {self.test_ratio}")
        if self.crop_mode not in ("center", "random"):
            raise ValueError(f"crop mode must be center or random, got {self.crop_mode!r}")
        if self.keyframes_only and self.sampling.every_frames is not None:
            raise ValueError("keyframes-only sampling works with every_seconds or count, not every_frames")
        if self.dedup not in ("off", "consecutive", "global"):
            raise ValueError(f"dedup must be off, consecutive or global, got {self.dedup!r}")
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 px, got {value}")

    def fingerprint(self) -> str:
        return fingerprint(asdict(self))


@dataclass
class Summary:
    """What a run did; ``ok`` is False when any input failed (the CLI then exits with 1)."""

    sampled: int = 0  # frames (or images) examined
    decoded: int = 0  # frames the video decoder produced (the decoding cost)
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already in the dataset with the same options
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, message)

    @property
    def ok(self) -> bool:
        return not self.failed

    def format(self) -> str:
        dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dropped.items())) or "none"
        lines = [
            f"inputs: {len(self.processed)} processed, {len(self.skipped)} already done, {len(self.failed)} failed",
            f"frames: {self.sampled} examined ({self.decoded} decoded), {self.kept} kept, "
            f"{sum(self.dropped.values())} dropped ({dropped})",
        ]
        lines += [f"FAILED: {message}" for _, message in self.failed]
        return "\n".join(lines)


def _expand(inputs: Iterable[str | Path], wanted: Callable[[Path], bool]) -> list[Path]:
    """Files as given plus, for folders, the ``wanted`` files inside (recursive, hidden ones skipped, sorted)."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.is_file() and wanted(p) and not p.name.startswith("."))
        else:
            paths.append(path)
    return paths


def _check_domain(domain: str) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")


def _dataset_deduper(store: DatasetStore, domain: str, mode: str, distance: int) -> Deduper:
    """A deduper that already knows every frame kept in the domain, listed or copied in by hand."""
    hashes = store.kept_hashes(domain) if mode == "global" else []
    if mode == "global":
        for path in store.unlisted_images(domain):
            try:
                hashes.append(dhash(analysis_gray(open_image(path))))
            except ImageInputError:
                continue
    return Deduper(mode, distance, hashes)


def _finish(image: Image.Image, options: FrameOptions, key: str) -> Image.Image:
    if options.resize is not None:
        image = resize_shorter(image, options.resize)
    if options.crop is not None:
        image = crop(image, options.crop, options.crop_mode, key)
    return image


def _examine(
    image: Image.Image, options: FrameOptions, deduper: Deduper
) -> tuple[Image.Image, str | None, dict[str, Any]]:
    """Letterbox, score, filter and de-duplicate one frame -> (image, drop reason, record fields)."""
    fields: dict[str, Any] = {}
    if options.letterbox:
        box = letterbox_box(image)
        if box is not None:
            image = image.crop(box)
            fields["letterbox"] = list(box)
    gray = analysis_gray(image)
    scores = score(gray)
    fields["scores"] = scores.as_dict()
    reason = options.quality.reason(scores)
    if reason is None:
        value = dhash(gray)
        fields["dhash"] = f"{value:016x}"
        if deduper.is_duplicate(value):
            reason = "duplicate"
        else:
            deduper.add(value)
    return image, reason, fields


def _expected_samples(reader: VideoReader, sampling: Sampling) -> int | None:
    ends = [x for x in (sampling.end, reader.info.duration) if x is not None]
    end = min(ends) if ends else None
    if sampling.count is not None:
        return sampling.count
    if end is None:
        return None
    span = max(0.0, end - sampling.start)
    if sampling.every_seconds is not None:
        return math.ceil(span / sampling.every_seconds - 1e-9)
    return math.ceil(span * reader.info.fps / (sampling.every_frames or 1))


def _nothing_to_sample(reader: VideoReader, sampling: Sampling) -> str | None:
    """Why no frame can be sampled from ``reader`` (``--start`` at or past its end), or None."""
    duration = reader.info.duration
    if duration is not None and sampling.start >= duration - 0.5 / reader.info.fps:
        return (
            f"{reader.path}: --start {sampling.start:g} s is at or past the end of the video ({duration:.2f} s); "
            "nothing to sample"
        )
    return None


def build_from_videos(
    inputs: Sequence[str | Path],
    out: str | Path,
    domain: str,
    options: FrameOptions | None = None,
    *,
    name: str | None = None,
    force: bool = False,
    progress: bool = False,
    log: Log | None = None,
) -> Summary:
    """Extract frames of ``inputs`` (video files or folders of videos) into ``out``'s domain.

    Videos already in the dataset with the same options are skipped (idempotent re-runs, cheap
    appends); a video seen before with other options, or that failed, is forgotten and redone.
    ``force`` redoes every input. ``name`` sets ``dataset.json``'s name of the domain.
    """
    _check_domain(domain)
    options = options or FrameOptions()
    log = log or (lambda message: print(message, file=sys.stderr))
    with DatasetStore(out, log=log) as store:
        return _build_from_videos(store, inputs, domain, options, name, force, progress, log)


def _build_from_videos(
    store: DatasetStore,
    inputs: Sequence[str | Path],
    domain: str,
    options: FrameOptions,
    name: str | None,
    force: bool,
    progress: bool,
    log: Log,
) -> Summary:
    if name:
        store.set_domain_name(domain, name)
    summary = Summary()
    options_fp = options.fingerprint()
    videos = _expand(inputs, is_video_name)
    if not videos:
        summary.failed.append((", ".join(map(str, inputs)) or "(none)", "no video files found"))
    deduper: Deduper | None = None
    for path in videos:
        try:
            source_id = content_id(path) if path.is_file() else None
        except OSError:
            source_id = None  # unreadable: VideoReader below says why
        if source_id is not None and not force and store.source_done(domain, source_id, options_fp):
            summary.skipped.append(str(path))
            log(f"{path}: already in the dataset with these options, skipped")
            continue
        try:
            reader = VideoReader(path)
        except VideoError as exc:
            summary.failed.append((str(path), str(exc)))
            log(f"error: {exc}")
            continue
        if source_id is None:
            reader.close()
            summary.failed.append((str(path), f"{path}: cannot read the file"))
            continue
        if (problem := _nothing_to_sample(reader, options.sampling)) is not None:
            reader.close()  # checked before anything of this video in the dataset is forgotten
            summary.failed.append((str(path), problem))
            log(f"error: {problem}")
            continue
        stem = store.stem_for(domain, safe_stem(path.stem), source_id)
        if store.has_source(domain, source_id) or force:
            store.forget_source(domain, source_id, stem, FORMATS)
            deduper = None  # its hashes are gone too
        if deduper is None or options.dedup == "consecutive":  # consecutive: starts afresh per video
            deduper = _dataset_deduper(store, domain, options.dedup, options.hash_distance)
        with reader:
            _extract(reader, path, source_id, stem, domain, options, options_fp, store, deduper, summary, progress, log)
    return summary


def _extract(
    reader: VideoReader,
    path: Path,
    source_id: str,
    stem: str,
    domain: str,
    options: FrameOptions,
    options_fp: str,
    store: DatasetStore,
    deduper: Deduper,
    summary: Summary,
    progress: bool,
    log: Log,
) -> None:
    counts: Counter = Counter()
    base = {
        "kind": "frame",
        "domain": domain,
        "source": str(path),
        "source_id": source_id,
        "stem": stem,
        "fingerprint": options_fp,
    }
    bar = tqdm(
        total=_expected_samples(reader, options.sampling),
        desc=path.name,
        unit="frame",
        disable=not progress,
        leave=False,
    )
    error = None
    try:
        for sample in reader.sample(options.sampling, keyframes_only=options.keyframes_only):
            bar.update(1)
            image, reason, fields = _examine(sample.image, options, deduper)
            ms = int(round(sample.time * 1000))
            record = {
                **base,
                **fields,
                "time": round(sample.time, 3),
                "status": "kept" if reason is None else "dropped",
                "reason": reason,
                "split": None,
                "file": None,
            }
            if reason is None:
                file_name = f"{stem}_{ms:08d}ms.{options.fmt}"
                split = split_for(file_name, options.test_ratio)
                relative = f"{split}{domain}/{file_name}"
                store.write_image(_finish(image, options, file_name), relative, options.jpeg_quality)
                record.update(split=split, file=relative)
                counts["kept"] += 1
            else:
                counts[reason] += 1
            store.append([record])
    except VideoError as exc:
        error = str(exc)
    finally:
        bar.close()
    if error is None and not counts:  # e.g. --start past the end of a video whose duration is not known
        error = f"{path}: no frame at or after --start {options.sampling.start:g} s: the video ends before it"
    kept = counts.pop("kept", 0)
    summary.sampled += kept + sum(counts.values())
    summary.decoded += reader.decoded
    summary.kept += kept
    summary.dropped.update(counts)
    store.append(
        [
            {
                "kind": "source",
                "domain": domain,
                "source": str(path),
                "source_id": source_id,
                "stem": stem,
                "fingerprint": options_fp,
                "status": "failed" if error else "done",
                "error": error,
                "decoded": reader.decoded,
                "kept": kept,
                "dropped": dict(counts),
                "options": asdict(options),
            }
        ]
    )
    if error:
        summary.failed.append((str(path), error))
        log(f"error: {error}")
    else:
        summary.processed.append(str(path))


def import_images(
    inputs: Sequence[str | Path],
    out: str | Path,
    domain: str,
    options: FrameOptions | None = None,
    *,
    name: str | None = None,
    progress: bool = False,
    log: Log | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Summary:
    """Import photos (files or folders, recursive) into ``out``'s domain.

    Each image is opened upright (EXIF orientation) as 8-bit RGB whatever its mode, filtered by
    ``options.quality`` (all rules off by default here: photos are chosen by people),
    de-duplicated, resized/cropped and written as ``<stem>.<fmt>``. Unreadable files are
    reported in the summary and skipped, as are images over ``max_pixels`` (None: no limit).
    ``options.sampling`` is not used.
    """
    _check_domain(domain)
    options = options or FrameOptions(quality=QualityFilter(None, None, None, None))
    log = log or (lambda message: print(message, file=sys.stderr))
    with DatasetStore(out, log=log) as store:
        return _import_images(store, inputs, domain, options, name, progress, log, max_pixels)


def _import_images(
    store: DatasetStore,
    inputs: Sequence[str | Path],
    domain: str,
    options: FrameOptions,
    name: str | None,
    progress: bool,
    log: Log,
    max_pixels: int | None,
) -> Summary:
    if name:
        store.set_domain_name(domain, name)
    summary = Summary()
    options_fp = fingerprint({**asdict(options), "sampling": None, "importer": "images"})
    photos = _expand(inputs, is_image_name)
    own = [(store.root / f"{split}{d}").resolve() for split in SPLITS for d in DOMAINS]
    inside = [path for path in photos if any(is_within(path.resolve(), folder) for folder in own)]
    if inside:  # the dataset's own images are outputs: importing them would replace or duplicate them
        photos = [path for path in photos if path not in inside]
        log(
            f"skipped {len(inside)} image(s) already inside the dataset's own folders ({store.root}/trainA, ...): "
            "they are its outputs, not inputs"
        )
    if not photos:
        why = "no image files found" if not inside else "every image given is already inside the dataset"
        summary.failed.append((", ".join(map(str, inputs)) or "(none)", why))
    deduper: Deduper | None = None
    for path in tqdm(photos, desc="images", unit="image", disable=not progress, leave=False):
        try:
            source_id = content_id(path)
            if store.image_done(domain, source_id, options_fp):
                summary.skipped.append(str(path))
                continue
            image = open_image(path, max_pixels=max_pixels)
        except (ImageInputError, OSError) as exc:
            message = f"{path}: not a readable image ({exc}); skipped"
            summary.failed.append((str(path), message))
            log(f"error: {message}")
            continue
        stem = store.stem_for(domain, safe_stem(path.stem), source_id)
        if store.has_source(domain, source_id):
            store.forget_source(domain, source_id, stem, FORMATS)
            deduper = None
        if deduper is None:
            deduper = _dataset_deduper(store, domain, options.dedup, options.hash_distance)
        image, reason, fields = _examine(image, options, deduper)
        record = {
            "kind": "frame",
            "domain": domain,
            "source": str(path),
            "source_id": source_id,
            "stem": stem,
            "fingerprint": options_fp,
            **fields,
            "time": None,
            "status": "kept" if reason is None else "dropped",
            "reason": reason,
            "split": None,
            "file": None,
        }
        summary.sampled += 1
        if reason is None:
            file_name = f"{stem}.{options.fmt}"
            split = split_for(file_name, options.test_ratio)
            relative = f"{split}{domain}/{file_name}"
            store.write_image(_finish(image, options, file_name), relative, options.jpeg_quality)
            record.update(split=split, file=relative)
            summary.kept += 1
        else:
            summary.dropped[reason] += 1
        store.append([record])
        summary.processed.append(str(path))
    return summary


__all__ = ["FrameOptions", "QualityFilter", "Sampling", "Summary", "build_from_videos", "import_images"]
