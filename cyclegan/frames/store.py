"""The dataset folder on disk: image files, ``manifest.jsonl`` and ``dataset.json``.

``manifest.jsonl`` holds one JSON object per line:

* ``{"kind": "frame", ...}`` -- one per decoded video frame or imported image, kept or dropped:
  ``domain``, ``source`` (path as given), ``source_id`` (content signature), ``time`` (seconds,
  null for images), ``status`` ("kept"/"dropped"), ``reason`` (null, "dark", "bright", "flat",
  "blurry", "duplicate"), ``scores``, ``dhash`` (hex), ``split`` and ``file`` (relative to the
  dataset root; null when dropped), ``fingerprint`` (the options that produced it).
* ``{"kind": "source", ...}`` -- one per finished video: ``status`` ("done"/"failed"), ``error``,
  counts and the options ``fingerprint``. A video whose last record is "done" with the same
  fingerprint is skipped on re-runs; anything else about it is forgotten and redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from cyclegan.contract.images import save_image
from cyclegan.contract.layout import DATASET_JSON, MANIFEST, SPLITS, DatasetError, read_dataset_json


def content_id(path: Path) -> str:
    """A cheap content signature: size + BLAKE2 of the first and last MiB (path independent)."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=10)
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        if size > 2 << 20:
            handle.seek(-(1 << 20), os.SEEK_END)
            digest.update(handle.read())
    return digest.hexdigest()


def fingerprint(options: dict[str, Any]) -> str:
    """A short stable hash of the options that decide which frames are written and how."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def split_for(name: str, test_ratio: float) -> str:
    """``"test"`` for a stable ``test_ratio`` share of file names, else ``"train"``.

    A hash of the name (not a running counter) decides, so appending files later never moves
    the ones already written from one split to the other.
    """
    if test_ratio <= 0:
        return "train"
    value = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") / 2**64
    return "test" if value < test_ratio else "train"


def safe_stem(stem: str) -> str:
    """A file-name-safe version of ``stem`` (letters, digits, ``-`` and ``_``; others -> ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return cleaned or "video"


class DatasetStore:
    """Reads and appends to one dataset folder; writes are atomic (temporary file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.root / MANIFEST
        self.records: list[dict[str, Any]] = self._read_manifest()
        self._reindex()

    def _reindex(self) -> None:
        # lookups per input must not scan the whole manifest (imports of 10k photos)
        self._by_source: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._stems: dict[tuple[str, str], set[str]] = {}
        for record in self.records:
            self._index(record)

    def _index(self, record: dict[str, Any]) -> None:
        domain, source_id = record.get("domain"), record.get("source_id")
        self._by_source.setdefault((domain, source_id), []).append(record)
        if record.get("stem"):
            self._stems.setdefault((domain, record["stem"]), set()).add(source_id)

    def _read_manifest(self) -> list[dict[str, Any]]:
        if not self.manifest_path.is_file():
            return []
        lines = self.manifest_path.read_text(encoding="utf-8").splitlines()
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if number != len(lines):
                    raise DatasetError(f"{self.manifest_path}:{number} is not JSON; fix or delete the line") from None
                # the last line cut short by a crash: ignored, its source is redone
        return records

    # -- queries -------------------------------------------------------------------------------
    def source_done(self, domain: str, source_id: str, options_fp: str) -> bool:
        """True when the last ``source`` record for this video says done with these options."""
        for record in reversed(self._by_source.get((domain, source_id), [])):
            if record.get("kind") == "source":
                return record.get("status") == "done" and record.get("fingerprint") == options_fp
        return False

    def image_done(self, domain: str, source_id: str, options_fp: str) -> bool:
        return any(
            r.get("kind") == "frame" and r.get("fingerprint") == options_fp
            for r in self._by_source.get((domain, source_id), [])
        )

    def has_source(self, domain: str, source_id: str) -> bool:
        return bool(self._by_source.get((domain, source_id)))

    def stem_for(self, domain: str, stem: str, source_id: str) -> str:
        """``stem``, or ``stem-<id>`` when another source of this domain already uses ``stem``."""
        others = self._stems.get((domain, stem), set()) - {source_id}
        return f"{stem}-{source_id[:6]}" if others else stem

    def kept_hashes(self, domain: str) -> list[int]:
        """dHashes of the frames kept in ``domain`` (for de-duplication across runs)."""
        return [
            int(r["dhash"], 16)
            for r in self.records
            if r.get("kind") == "frame" and r.get("domain") == domain and r.get("status") == "kept" and r.get("dhash")
        ]

    def unlisted_images(self, domain: str) -> list[Path]:
        """Images in the domain's folders that the manifest does not know (copied in by hand)."""
        listed = {r.get("file") for r in self.records if r.get("file")}
        found = []
        for split in SPLITS:
            folder = self.root / f"{split}{domain}"
            if folder.is_dir():
                found += [
                    p
                    for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.relative_to(self.root).as_posix() not in listed
                ]
        return found

    # -- changes -------------------------------------------------------------------------------
    def forget_source(self, domain: str, source_id: str, stem: str, suffixes: Iterable[str]) -> int:
        """Delete every file and record of a source (before redoing it); returns files removed.

        Files named ``<stem>_<digits>ms.<ext>`` without a record (left by an interrupted run)
        are removed too.
        """
        removed = 0
        keep: list[dict[str, Any]] = []
        for record in self.records:
            if record.get("domain") == domain and record.get("source_id") == source_id:
                if record.get("file"):
                    removed += self._unlink(self.root / record["file"])
            else:
                keep.append(record)
        pattern = re.compile(rf"^{re.escape(stem)}_\d+ms\.({'|'.join(re.escape(s) for s in suffixes)})$")
        for split in SPLITS:
            folder = self.root / f"{split}{domain}"
            if folder.is_dir():
                for path in folder.iterdir():
                    if pattern.match(path.name):
                        removed += self._unlink(path)
        if len(keep) != len(self.records):
            self.records = keep
            self._reindex()
            self._rewrite_manifest()
        return removed

    @staticmethod
    def _unlink(path: Path) -> int:
        try:
            path.unlink()
            return 1
        except FileNotFoundError:
            return 0

    def _rewrite_manifest(self) -> None:
        tmp = self.manifest_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records), encoding="utf-8")
        os.replace(tmp, self.manifest_path)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records to the manifest (one line each, flushed)."""
        if not records:
            return
        with self.manifest_path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        self.records.extend(records)
        for record in records:
            self._index(record)

    def write_image(self, image: Image.Image, relative: str, quality: int = 95) -> None:
        """Save ``image`` at ``root/relative`` atomically (format from the extension; JPEG at ``quality``)."""
        save_image(image, self.root / relative, quality=quality)

    def set_domain_name(self, domain: str, name: str) -> None:
        """Set ``dataset.json``'s ``domains[domain] = name``, keeping every other key."""
        info = read_dataset_json(self.root)
        info["domains"] = dict(sorted({**info.get("domains", {}), domain: name}.items()))
        path = self.root / DATASET_JSON
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
