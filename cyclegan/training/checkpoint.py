"""Atomic checkpoints under ``RUN/checkpoints``: ``step_XXXXXXXX/`` directories, the last K kept.

A checkpoint is written into ``.tmp-step_XXXXXXXX/``, completed with a ``COMPLETE`` marker and
then renamed into place, so a crash at any point leaves either the old set of checkpoints or the
new one, never a ``step_*`` directory that looks valid but is not. ``latest`` only considers
directories with the marker, and a marked checkpoint that still does not load (a file damaged
afterwards) gives way to the one before it, with a warning.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from cyclegan.contract.files import OutputError, reason
from cyclegan.training.errors import TrainingSetupError

MARKER = "COMPLETE"
_NAME = re.compile(r"^step_(\d{8,})$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = []
    for path in ckpt_dir.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / MARKER).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resume_candidates(resume: str, ckpt_dir: Path) -> list[Path]:
    """``latest`` -> every complete checkpoint, newest first; otherwise the one checkpoint directory named."""
    if resume == "latest":
        found = [path for _, path in reversed(list_checkpoints(ckpt_dir))]
        if not found:
            raise TrainingSetupError(
                f"--resume latest: no complete checkpoint in {ckpt_dir}; start without --resume "
                "or point train.output_dir at the run to continue"
            )
        return found
    path = Path(resume)
    if not (path / MARKER).is_file():
        raise TrainingSetupError(
            f"--resume {resume}: not a complete checkpoint directory (no {MARKER} marker); "
            f"use --resume latest or one of {ckpt_dir}/step_*"
        )
    return [path]


def _describe(exc: BaseException, folder: Path) -> str:
    """One line for a failed write, with the free space of the device (torch reports a full disk vaguely)."""
    text = (
        reason(exc)
        if isinstance(exc, OSError)
        else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return text
    return f"{text} ({free / 1e6:.1f} MB free on its device)" if free < 1e9 else text


def load_first_loadable(candidates: list[Path], load: Callable[[Path], None], warn: Callable[[str], None]) -> Path:
    """``load`` the first candidate that loads; a damaged one is reported and the next older one tried."""
    problems = []
    for path in candidates:
        try:
            load(path)
            return path
        except Exception as exc:  # noqa: BLE001 - any failure to load means: this checkpoint is damaged
            problems.append(f"{path.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if len(candidates) > 1:
                warn(f"warning: checkpoint {path} does not load ({problems[-1]}); trying the one before it")
    raise TrainingSetupError(f"no checkpoint could be loaded: {'; '.join(problems)}")


class CheckpointWriter:
    """Writes, marks, renames and prunes checkpoints; all ranks call :meth:`save`."""

    def __init__(self, ckpt_dir: Path, keep_last: int) -> None:
        self.dir = ckpt_dir
        self.keep_last = keep_last

    def clean_partial(self) -> None:
        """Remove leftovers of checkpoint writes that were interrupted (main process only)."""
        if self.dir.is_dir():
            for path in self.dir.glob(".tmp-step_*"):
                shutil.rmtree(path, ignore_errors=True)

    def save(self, accelerator, step: int, info: dict) -> Path:
        """Write checkpoint ``step``; a failed write (full disk, ...) on any process raises
        :class:`~cyclegan.contract.files.OutputError` on every process, with the partial directory removed and
        the previous checkpoints untouched."""
        final = self.dir / checkpoint_name(step)
        if (final / MARKER).is_file():
            return final  # already saved at this step (e.g. periodic save == final save)
        tmp = self.dir / f".tmp-{checkpoint_name(step)}"
        problem = None
        if accelerator.is_main_process:
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            except OSError as exc:
                problem = _describe(exc, self.dir)
        self._agree(accelerator, problem, tmp, step)  # also the barrier before every process writes
        try:
            accelerator.save_state(str(tmp))
        except Exception as exc:  # noqa: BLE001 - torch/safetensors report a full disk as RuntimeError & co.
            problem = _describe(exc, self.dir)
        self._agree(accelerator, problem, tmp, step)
        if accelerator.is_main_process:
            try:
                self._commit(tmp, final, info)
            except OSError as exc:
                problem = _describe(exc, self.dir)
        self._agree(accelerator, problem, tmp, step)
        return final

    def _agree(self, accelerator, problem: str | None, tmp: Path, step: int) -> None:
        """A barrier that also tells every process whether any of them failed; then all raise together."""
        ok = torch.tensor([0.0 if problem else 1.0], device=accelerator.device)
        if accelerator.gather(ok).min() >= 1:
            return
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        kept = list_checkpoints(self.dir)
        raise OutputError(
            f"cannot write checkpoint step {step} into {self.dir}: {problem or 'it failed on another process'}; "
            f"{f'the last complete checkpoint is {kept[-1][1].name}' if kept else 'no checkpoint was kept'} "
            "(free some space and continue with --resume latest)",
            errno_=errno.ENOSPC if problem and "space" in problem else None,
        )

    def _commit(self, tmp: Path, final: Path, info: dict) -> None:
        """Mark the written checkpoint complete, move it into place and prune the old ones."""
        with open(tmp / MARKER, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():  # an unmarked directory of the same name: not a valid checkpoint
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, path in list_checkpoints(self.dir)[: -self.keep_last]:
            shutil.rmtree(path, ignore_errors=True)
