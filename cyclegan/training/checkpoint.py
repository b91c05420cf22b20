"""Atomic checkpoints under ``RUN/checkpoints``: ``step_XXXXXXXX/`` directories, the last K kept.

A checkpoint is written into ``.tmp-step_XXXXXXXX/``, completed with a ``COMPLETE`` marker and
then renamed into place, so a crash at any point leaves either the old set of checkpoints or the
new one, never a ``step_*`` directory that looks valid but is not. ``latest`` only considers
directories with the marker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from cyclegan.training.errors import TrainingSetupError

MARKER = "COMPLETE"
_NAME = re.compile(r"^step_(\d{8,})$")
# Fault injection for the crash tests: "<stage>@<step>" stalls the process at that stage so a test can
# SIGKILL it there. Stages: "in_checkpoint" (files written, not yet marked/renamed), "after_checkpoint".
FAULT_ENV = "CYCLEGAN_TRAIN_FAULT"


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


def resolve_resume(resume: str, ckpt_dir: Path) -> Path:
    """``latest`` -> the newest complete checkpoint; otherwise a checkpoint directory path."""
    if resume == "latest":
        found = list_checkpoints(ckpt_dir)
        if not found:
            raise TrainingSetupError(
                f"--resume latest: no complete checkpoint in {ckpt_dir}; start without --resume "
                "or point train.output_dir at the run to continue"
            )
        return found[-1][1]
    path = Path(resume)
    if not (path / MARKER).is_file():
        raise TrainingSetupError(
            f"--resume {resume}: not a complete checkpoint directory (no {MARKER} marker); "
            f"use --resume latest or one of {ckpt_dir}/step_*"
        )
    return path


def maybe_fault(stage: str, step: int) -> None:
    """Stall forever at ``stage`` of checkpoint ``step`` when the fault env var asks for it (tests only)."""
    if os.environ.get(FAULT_ENV) == f"{stage}@{step}":
        print(f"FAULT {stage}@{step}: stalling", flush=True)
        while True:
            time.sleep(60)


class CheckpointWriter:
    """Writes, marks, renames and prunes checkpoints; all ranks call ``save``."""

    def __init__(self, ckpt_dir: Path, keep_last: int) -> None:
        self.dir = ckpt_dir
        self.keep_last = keep_last

    def clean_partial(self) -> None:
        """Remove leftovers of checkpoint writes that were interrupted (main process only)."""
        if self.dir.is_dir():
            for path in self.dir.glob(".tmp-step_*"):
                shutil.rmtree(path, ignore_errors=True)

    def save(self, accelerator, step: int, info: dict) -> Path:
        final = self.dir / checkpoint_name(step)
        if (final / MARKER).is_file():
            return final  # already saved at this step (e.g. periodic save == final save)
        tmp = self.dir / f".tmp-{checkpoint_name(step)}"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        maybe_fault("in_checkpoint", step)
        if accelerator.is_main_process:
            marker = tmp / MARKER
            with open(marker, "w", encoding="utf-8") as fh:
                json.dump(info, fh)
                fh.flush()
                os.fsync(fh.fileno())
            if final.exists():  # an unmarked directory of the same name: not a valid checkpoint
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._prune()
        accelerator.wait_for_everyone()
        maybe_fault("after_checkpoint", step)
        return final

    def _prune(self) -> None:
        for _, path in list_checkpoints(self.dir)[: -self.keep_last]:
            shutil.rmtree(path, ignore_errors=True)
