"""Real faults for the tests: full and read-only file systems (a tmpfs mounted for the test), filled disks.

Mounting needs root (CAP_SYS_ADMIN); elsewhere the tests that need it are skipped with the reason. Permission
bits cannot simulate a read-only folder for root, which ignores them: a read-only mount is the honest way.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64k", *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (created) for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0777" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` with one file so that about ``leave`` bytes (whole pages) stay free."""
    filler = folder / ".filler"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(filler, "ab") as handle:
        chunk = b"\0" * PAGE
        for _ in range(max(0, free - leave) // PAGE):
            try:
                handle.write(chunk)
                handle.flush()
            except OSError:
                break
    return filler


def leftovers(folder: Path) -> list[str]:
    """Temporary or empty files anywhere under ``folder`` (what a failed write must not leave)."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file()
        and path.name not in (".filler", ".lock")
        and (path.name.endswith((".tmp", ".partial")) or path.stat().st_size == 0)
    )
