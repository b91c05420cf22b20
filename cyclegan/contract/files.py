"""Writing files so that nothing is lost and every failure is one clear line (stdlib only).

* :func:`atomic_path` / :func:`write_text_atomic` / :func:`write_bytes_atomic`: the content goes to a hidden
  temporary file next to the target and replaces it only once complete; on any failure the temporary file is
  removed (a full disk never leaves a 0-byte ``.tmp`` behind) and an ``OSError`` becomes :class:`OutputError`.
* :func:`append_lines`: appends whole lines or nothing (a failed write is cut back), for ``*.jsonl`` logs.
* :func:`ensure_writable_dir`: an output folder is created and probed before any work starts.
* :class:`FolderLock`: one writer per dataset or run folder at a time; a second one refuses at once.
* :func:`safe_stem`: a file-name stem that keeps the letters of any script ("фото с пробелом" ->
  ``фото_с_пробелом``) and drops what is unsafe in a file name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

from cyclegan.contract.errors import EXIT_BAD_INPUT, EXIT_FAILED, ToolkitError

# Errors that hit every file written to the same place: a run stops at the first one instead of failing each file.
_DISK_WIDE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.EISDIR: "a folder is in the way",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "input/output error",
}
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")  # see temporary_name
STEM_BYTES = 100  # stems stay well below the usual 255-byte limit of a file name, with room for suffixes


class OutputError(ToolkitError):
    """A file could not be written; the message names it and says why (disk full, read-only, ...)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_

    @property
    def disk_wide(self) -> bool:
        """True when every further write to the same place would fail too (full or read-only disk)."""
        return self.errno in _DISK_WIDE


class FolderBusyError(ToolkitError):
    """Another process is writing into the same dataset or run folder."""

    exit_code = EXIT_BAD_INPUT


def reason(exc: OSError) -> str:
    """A short human reason for an ``OSError`` ("no space left on the device", ...)."""
    return _REASONS.get(exc.errno or -1, exc.strerror or str(exc))


def output_error(path: str | os.PathLike[str], exc: OSError, *, exit_code: int | None = None) -> OutputError:
    error = OutputError(f"cannot write {path}: {reason(exc)}", errno_=exc.errno)
    if exit_code is not None:
        error.exit_code = exit_code
    return error


def is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies inside it (pass both resolved)."""
    return path == folder or folder in path.parents


def temporary_name(path: Path) -> Path:
    """A hidden name next to ``path`` that no other writer uses: ``.NAME.<pid>-<random>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Remove the :func:`temporary_name` files in ``folder`` whose writing process is gone (killed mid-write);
    returns how many. Files of live processes (a concurrent writer) are left alone."""
    removed = 0
    for path in Path(folder).glob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; it replaces ``path`` when the block succeeds.

    The temporary file is removed whatever happens. An ``OSError`` with an errno (disk full, read-only, ...)
    becomes :class:`OutputError`; other errors (an encoder refusing the data) pass through unchanged.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise output_error(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def append_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> None:
    """Append ``lines`` (newline added) as a whole: if the write fails part way, the file is cut back to where it was.

    A crash (kill -9) can still leave a partial last line; readers of such files repair it on open
    (see :meth:`cyclegan.frames.store.DatasetStore`).
    """
    data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8")
    if not data:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # appenders in other processes never interleave their lines
        start = os.fstat(fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise output_error(path, exc) from None
    finally:
        os.close(fd)


def ensure_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Create the folder ``path`` (``what`` names it in messages, e.g. ``--out``) and check that files can be
    written into it; raises :class:`OutputError` with exit code 2 (nothing was done) otherwise."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temporary_name(folder / ".write-test")
        probe.touch()
        probe.unlink()
    except FileExistsError:
        raise OutputError(f"{what} {folder} is a file, not a folder", errno_=errno.ENOTDIR) from None
    except OSError as exc:
        error = OutputError(f"{what} {folder} is not writable: {reason(exc)}", errno_=exc.errno)
        error.exit_code = EXIT_BAD_INPUT
        raise error from None
    return folder


class FolderLock:
    """An exclusive lock on ``FOLDER/.lock`` (``flock``: released by the kernel even on kill -9).

    ``with FolderLock(folder, "cyclegan frames"):`` -- a second writer gets :class:`FolderBusyError` at once,
    naming the process that holds the folder. The lock file itself stays (removing it would race).
    """

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike[str], what: str) -> None:
        self.path = Path(folder) / self.NAME
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise output_error(self.path, exc, exit_code=EXIT_BAD_INPUT) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise FolderBusyError(
                f"{self.path.parent} is being written by another process (pid {holder}); wait for it to finish "
                f"or use another folder (two writers would mix their {self.what} outputs)"
            ) from None
        with contextlib.suppress(OSError):  # only informative
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def safe_stem(text: str, fallback: str, *, sep: str = "_", keep: str = "-_") -> str:
    """A readable, safe file-name stem from ``text``.

    Letters, digits and combining marks of any script are kept (NFC), as are the characters in ``keep``;
    every run of anything else (spaces, dots, slashes, control and bidi characters, emoji) becomes ``sep``.
    No leading or trailing separators or dots, at most :data:`STEM_BYTES` UTF-8 bytes; ``fallback`` if
    nothing is left.
    """
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    for char in text:
        if unicodedata.category(char)[0] in "LNM" or char in keep:
            out.append(char)
        elif not out or out[-1] != sep:
            out.append(sep)
    stem = "".join(out)
    stem = stem.encode("utf-8")[:STEM_BYTES].decode("utf-8", "ignore")
    # no separators or dots at the ends, and no combining mark first (it would sit on nothing)
    previous = None
    while stem != previous:
        previous = stem
        stem = stem.strip(f"{sep}{keep}.")
        while stem and unicodedata.category(stem[0]).startswith("M"):
            stem = stem[1:]
    return stem or fallback
