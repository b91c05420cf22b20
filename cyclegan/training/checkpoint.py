"""Atomic checkpoints under ``RUN/checkpoints``: ``step_XXXXXXXX/`` directories, the last K kept.

A checkpoint is written into ``.tmp-step_XXXXXXXX/``, completed with a ``COMPLETE`` marker and
then renamed into place, so a crash at any point leaves either the old set of checkpoints or the
new one, never a ``step_*`` directory that looks valid but is not. ``latest`` only considers
directories with the marker, and a marked checkpoint that still does not load (a file damaged
afterwards) gives way to the one before it, with a warning.

The marker, the rename and the pruning are done by one process per folder (:func:`writes_run_files`): the
main process when every node sees the same ``train.output_dir``, else the first process of each node, which
then keeps a full copy (Accelerate's ``save_on_each_node``). Every process writes its own
``random_states_<rank>.pkl``; a node's own copy also gets those of the other nodes' processes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import gather_object

from cyclegan.contract.files import OutputError, reason
from cyclegan.training.errors import TrainingSetupError

MARKER = "COMPLETE"
_NAME = re.compile(r"^step_(\d{8,})$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def checkpoint_step(path: Path) -> int:
    """The step a complete checkpoint was written at (its marker says; the name for hand-made ones)."""
    try:
        return int(json.loads((path / MARKER).read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        match = _NAME.match(path.name)
        return int(match.group(1)) if match else -1


def rng_state_file(path: Path, rank: int) -> Path:
    """Accelerate's RNG states of process ``rank`` in a checkpoint (it skips a missing one silently on load)."""
    return path / f"random_states_{rank}.pkl"


def writes_run_files(accelerator: Accelerator) -> bool:
    """Whether this process writes the run folder's shared files (checkpoints' marker, rename and pruning,
    config.yaml): the main process, or the first process of each node when the nodes do not share the folder."""
    if accelerator.project_configuration.save_on_each_node:
        return accelerator.is_local_main_process
    return accelerator.is_main_process


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


def resume_candidates(resume: str, ckpt_dir: Path, *, none_ok: bool = False) -> list[Path]:
    """``latest`` -> every complete checkpoint, newest first; otherwise the one checkpoint directory named.

    ``none_ok``: an empty list rather than an error for ``latest`` (several processes compare what they hold).
    """
    if resume == "latest":
        found = [path for _, path in reversed(list_checkpoints(ckpt_dir))]
        if not found and not none_ok:
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


def load_first_loadable(
    candidates: list[Path],
    load: Callable[[Path], None],
    warn: Callable[[str], None],
    gather: Callable[[str | None], list[str | None]] = lambda problem: [problem],
) -> Path:
    """``load`` the first candidate that loads; a damaged one is reported and the next older one tried.

    ``gather`` collects every process's problem (None: loaded), so that all processes move on together when
    the checkpoint does not load on one of them.
    """
    problems = []
    for path in candidates:
        try:
            load(path)
            problem = None
        except Exception as exc:  # noqa: BLE001 - any failure to load means: this checkpoint is damaged
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        found = [p for p in gather(problem) if p]
        if not found:
            return path
        problems.append(f"{path.name}: {'; '.join(found)}")
        if len(candidates) > 1:
            warn(f"warning: checkpoint {path} does not load ({problems[-1]}); trying the one before it")
    raise TrainingSetupError(f"no checkpoint could be loaded: {'; '.join(problems)}")


class CheckpointWriter:
    """Writes, marks, renames and prunes checkpoints; all ranks call :meth:`save`."""

    def __init__(self, ckpt_dir: Path, keep_last: int) -> None:
        self.dir = ckpt_dir
        self.keep_last = keep_last
        # The step whose checkpoint this run wrote or resumed from. Decided in memory, the same on every
        # process: a look at the folder could differ between nodes and leave one process alone in a barrier.
        self.saved_step: int | None = None

    def clean_partial(self) -> None:
        """Remove leftovers of checkpoint writes that were interrupted (main process only)."""
        if self.dir.is_dir():
            for path in self.dir.glob(".tmp-step_*"):
                shutil.rmtree(path, ignore_errors=True)

    def save(self, accelerator: Accelerator, step: int, info: dict) -> Path:
        """Write checkpoint ``step``. A failed write (full disk, ...) on any process raises
        :class:`~cyclegan.contract.files.OutputError` on every process together, with the partial directory
        removed and the previous checkpoints untouched."""
        final = self.dir / checkpoint_name(step)
        if step == self.saved_step:
            return final  # already saved at this step (e.g. periodic save == final save)
        tmp = self.dir / f".tmp-{checkpoint_name(step)}"
        writer = writes_run_files(accelerator)
        problem = None
        if writer:
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            except OSError as exc:
                problem = _describe(exc, self.dir)
        self._agree(accelerator, problem, tmp, step, writer)  # also the barrier before every process writes
        try:
            accelerator.save_state(str(tmp))
        except Exception as exc:  # noqa: BLE001 - torch/safetensors report a full disk as RuntimeError & co.
            problem = _describe(exc, self.dir)
        self._agree(accelerator, problem, tmp, step, writer)
        try:
            if accelerator.project_configuration.save_on_each_node:
                _complete_rng_states(tmp, accelerator, writer)
            if writer:
                self._commit(tmp, final, info)
        except OSError as exc:
            problem = _describe(exc, self.dir)
        self._agree(accelerator, problem, tmp, step, writer)
        self.saved_step = step
        return final

    def _agree(self, accelerator: Accelerator, problem: str | None, tmp: Path, step: int, writer: bool) -> None:
        """A barrier that also tells every process whether any of them failed; then all raise together."""
        problems = [p for p in gather_object([problem]) if p]
        if not problems:
            return
        if writer:
            shutil.rmtree(tmp, ignore_errors=True)
        kept = list_checkpoints(self.dir)
        raise OutputError(
            f"cannot write checkpoint step {step} into {self.dir}: {'; '.join(dict.fromkeys(problems))}; "
            f"{f'the last complete checkpoint is {kept[-1][1].name}' if kept else 'no checkpoint was kept'} "
            "(free some space and continue with --resume latest)",
            errno_=errno.ENOSPC if any("space" in p for p in problems) else None,
        )

    def _commit(self, tmp: Path, final: Path, info: dict) -> None:
        """Mark the written checkpoint complete, move it into place and prune the old ones."""
        with open(tmp / MARKER, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():  # unmarked, or from before a resume from an older checkpoint: this run replaces it
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, path in list_checkpoints(self.dir)[: -self.keep_last]:
            shutil.rmtree(path, ignore_errors=True)


def _complete_rng_states(tmp: Path, accelerator: Accelerator, writer: bool) -> None:
    """Give each node's copy the RNG states of every process, not only of its own: any node's checkpoint folder
    then resumes any rank exactly (a replaced node gets a copy; torchrun may give a node another rank)."""
    rank = accelerator.process_index
    states = gather_object([rng_state_file(tmp, rank).read_bytes()])  # a few KB each
    if writer:
        for other, data in enumerate(states):
            path = rng_state_file(tmp, other)
            if not path.exists():
                path.write_bytes(data)  # inside the unmarked .tmp- folder: atomic with the checkpoint
