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
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from cyclegan.contract import files
from cyclegan.contract.images import save_image
from cyclegan.contract.layout import DATASET_JSON, MANIFEST, SPLITS, DatasetError, read_dataset_json

# Fields whose type the store relies on, when present (a hand-edited manifest is checked on open).
_RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "domain": str,
    "source_id": str,
    "stem": str,
    "status": str,
    "fingerprint": str,
    "file": (str, type(None)),
    "dhash": (str, type(None)),
}


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
    """A readable, file-name-safe version of a source's stem (any script kept; see ``contract.files.safe_stem``)."""
    return files.safe_stem(stem, "video")


class DatasetStore:
    """Reads and appends to one dataset folder; writes are atomic (temporary file + rename).

    Opening checks that the folder is writable and takes its lock; use it as a context manager (or call
    :meth:`close`) so the lock is released. ``log`` receives one line per repair made to the manifest.
    """

    def __init__(self, root: str | Path, *, log: Callable[[str], None] | None = None) -> None:
        self.root = files.ensure_writable_dir(root, "dataset folder")
        self._lock = files.FolderLock(self.root, "dataset").acquire()
        self._log = log or (lambda message: None)
        self.manifest_path = self.root / MANIFEST
        try:
            self.records: list[dict[str, Any]] = self._read_manifest()
        except BaseException:
            self.close()
            raise
        self._reindex()

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> DatasetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """The records, after repairing what a crash or a full disk can leave (the file is rewritten then).

        * a last line without its newline (a write cut short): dropped, its source is redone;
        * a line holding a cut-short record with a complete one appended after it (what older versions
          wrote after such a crash): the complete record is kept.
        Anything else that is not a record stops with a :class:`DatasetError` naming the line.
        """
        path = self.manifest_path
        if path.is_dir():
            raise DatasetError(f"{path} is a folder; the manifest must be a file: move the folder away")
        if not path.is_file():
            return []
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path} is not UTF-8 text ({exc}); restore it from a backup or move it away") from None
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {files.reason(exc)}") from None
        lines = text.split("\n")
        partial = lines.pop()  # "" when the file ends with a newline
        records: list[dict[str, Any]] = []
        repairs = []
        if partial.strip():
            try:
                complete = isinstance(json.loads(partial), dict)
            except json.JSONDecodeError:
                complete = False
            if complete:  # only its newline is missing
                lines.append(partial)
                repairs.append("added the missing newline after the last record")
            else:
                repairs.append(f"dropped a record cut short at the end ({len(partial.encode())} bytes)")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = _salvage(line)
                if record is None:
                    raise DatasetError(
                        f"{path}:{number} is not a JSON record and holds no complete one; restore the file "
                        "or delete that line (its video or image is then redone)"
                    ) from None
                repairs.append(f"line {number}: kept the complete record after a cut-short one")
            records.append(_checked(record, path, number))
        if repairs:
            self._log(f"repaired {path}: " + "; ".join(repairs))
            self.records = records
            self._rewrite_manifest()
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
        files.write_text_atomic(self.manifest_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records))

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records to the manifest, whole lines or none (:class:`~cyclegan.contract.files.OutputError`)."""
        if not records:
            return
        files.append_lines(self.manifest_path, (json.dumps(r, sort_keys=True) for r in records))
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
        if path.is_dir():
            raise DatasetError(f"{path} is a folder; it must be a file: move the folder away")
        files.write_text_atomic(path, json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _salvage(line: str) -> dict[str, Any] | None:
    """The complete record at the end of a line that starts with a cut-short one, if there is one."""
    decoder = json.JSONDecoder()
    for start in (i for i, char in enumerate(line) if char == "{" and i > 0):
        try:
            record, end = decoder.raw_decode(line, start)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and not line[end:].strip():
            return record
    return None


def _checked(record: Any, path: Path, number: int) -> dict[str, Any]:
    """``record`` if it is a manifest record (a JSON object with the fields the store uses of the right type)."""
    if not isinstance(record, dict):
        raise DatasetError(
            f"{path}:{number} is JSON but not a record (a JSON object), it is {type(record).__name__}: "
            "restore the file or delete that line"
        )
    for key, kind in _RECORD_TYPES.items():
        if key in record and not isinstance(record[key], kind):
            raise DatasetError(f"{path}:{number}: field {key!r} has the wrong type ({record[key]!r}): fix the line")
    file = record.get("file")
    if file is not None and (PurePosixPath(file).is_absolute() or ".." in PurePosixPath(file).parts or "\\" in file):
        raise DatasetError(f"{path}:{number}: field 'file' must be a path inside the dataset, got {file!r}")
    dhash = record.get("dhash")
    if dhash is not None and not re.fullmatch(r"[0-9a-f]{1,16}", dhash):
        raise DatasetError(f"{path}:{number}: field 'dhash' is not a 64-bit hex hash ({dhash!r}): fix the line")
    return record
