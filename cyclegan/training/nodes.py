"""One run over several processes and machines (torchrun, ``accelerate launch`` with several nodes).

Every process must take the same decisions, or one of them ends up alone in a collective and the others wait
until ``train.ddp_timeout_s``. So what one node decides from its own disk (its dataset, its run folder, its
checkpoints) is gathered first, and all processes act on the gathered facts together: a check failing on one
node stops every process with that node's message; ``--resume`` loads the newest checkpoint that every node
holds; after loading, all processes must hold the same weights. Whether the nodes share ``train.output_dir``
is found out with a probe file rather than configured, and decides Accelerate's ``save_on_each_node``.

With one process all of this reduces to the single-process behaviour (gathers return the process's own value).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object
from torch import nn

from cyclegan.contract.errors import ToolkitError
from cyclegan.training.checkpoint import checkpoint_step, rng_state_file
from cyclegan.training.errors import PeerLostError, TrainingSetupError


def this_process() -> str:
    """``rank R on HOST``, how messages name a process."""
    return f"rank {PartialState().process_index} on {socket.gethostname()}"


def rendezvous() -> str:
    """The job as its processes know it: the process group's store on rank 0's node (MASTER_ADDR:MASTER_PORT;
    the --rdzv-endpoint's host with torchrun's c10d rendezvous, which picks the port) and torchrun's run id."""
    address = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    return f"{address} (id {run_id})" if run_id != "none" else address


def gather(obj: Any) -> list[Any]:
    """``obj`` of every process, by rank (``[obj]`` with one process)."""
    return gather_object([obj])


def gather_problems(problem: str | None) -> list[str | None]:
    """Every process's problem (None: none), prefixed with the process that has it when there are several."""
    if PartialState().num_processes == 1:
        return [problem]
    return gather(problem and f"{this_process()}: {problem}")


@contextlib.contextmanager
def all_or_none() -> Iterator[None]:
    """``with all_or_none(): checks``: when a check fails on any process, every process raises its message.

    A :class:`ToolkitError` becomes one :class:`TrainingSetupError` on every process; any other exception is
    re-raised with its traceback on the process that had it (the others report it in one line).
    """
    if PartialState().num_processes == 1:
        yield
        return
    failure: Exception | None = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - shared with every process below, then raised
        failure = exc
    problem = None if failure is None else str(failure) if isinstance(failure, ToolkitError) else repr(failure)
    found = [(where, p) for where, p in gather((this_process(), problem)) if p is not None]
    if failure is not None and not isinstance(failure, ToolkitError):
        raise failure
    if found:
        if len(found) == PartialState().num_processes and len({p for _, p in found}) == 1:
            raise TrainingSetupError(found[0][1])  # the same problem everywhere, e.g. a bad setting
        raise TrainingSetupError("; ".join(f"{where}: {p}" for where, p in found))


def check_same_dataset(root: Path, paths: list[Path]) -> None:
    """Every node must read the same files: the data order and augmentation are a function of (seed, epoch,
    index), so a node with one image more or less would silently train on other pairs. Names and sizes only."""
    if PartialState().num_processes == 1:
        return
    digest = hashlib.blake2b(digest_size=8)
    for path in paths:
        digest.update(f"{path.relative_to(root)}\t{path.stat().st_size}\n".encode())
    everyone = gather((this_process(), str(root), len(paths), digest.hexdigest()))
    if len({entry[3] for entry in everyone}) > 1:
        held = "; ".join(f"{where}: {n} images in {folder} (names and sizes {h})" for where, folder, n, h in everyone)
        raise TrainingSetupError(
            f"the nodes' training images differ ({held}): give every node the same files in data.root"
        )


def agree_on_resume(candidates: list[Path], resume: str, ckpt_dir: Path) -> list[Path]:
    """The resume candidates (newest first) that every process holds with its own RNG states.

    Nodes without a shared folder each hold their own copy of a checkpoint; a node can lack the newest one
    (killed before it renamed it), or hold other steps. The newest step complete everywhere wins; none is an
    error naming what each process has. A checkpoint without this process's RNG states does not count:
    Accelerate would resume without them, silently not exactly.
    """
    rank = PartialState().process_index
    usable: dict[int, Path] = {}
    notes = []
    for path in candidates:
        if rng_state_file(path, rank).is_file():
            usable[checkpoint_step(path)] = path
        else:
            notes.append(f"{path.name} lacks {rng_state_file(path, rank).name}")
    folder = str(candidates[0].parent) if candidates else str(ckpt_dir)
    everyone = gather((this_process(), sorted(usable), notes, folder))
    common = set.intersection(*(set(steps) for _, steps, _, _ in everyone))
    if not common:
        held = "; ".join(
            f"{where} has {_steps(steps)} in {where_dir}" + (f" ({', '.join(lacks)})" if lacks else "")
            for where, steps, lacks, where_dir in everyone
        )
        raise TrainingSetupError(
            f"--resume {resume}: no checkpoint step is complete on every process: {held}. Copy a "
            "checkpoints/step_N folder of one node to the nodes that lack it (each process needs its "
            "random_states_<rank>.pkl: resume with the same number of processes), or start a new run"
        )
    newest = max(common)
    ahead = [where for where, steps, _, _ in everyone if max(steps) > newest]
    if ahead and PartialState().is_main_process:
        print(f"warning: resuming every process from step {newest}, the newest all hold ({', '.join(ahead)} "
              "also had later ones)", flush=True)  # fmt: skip
    return [usable[step] for step in sorted(common, reverse=True)]


def _steps(steps: list[int]) -> str:
    return f"step{'s' if len(steps) > 1 else ''} {', '.join(map(str, steps))}" if steps else "none"


def output_is_node_local(run_dir: Path) -> bool:
    """True when the nodes do not share ``run_dir`` (each node then keeps full checkpoints: ``save_on_each_node``).

    Rank 0 writes a probe file; the first process of every other node looks for it in its own ``run_dir``.
    Some nodes sharing the folder and others not is refused: each file must have exactly one writer per folder.
    """
    state = PartialState()
    if state.num_processes == 1 or sum(gather(state.is_local_main_process)) == 1:
        return False  # one node
    probe = None
    if state.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".node-probe-{secrets.token_hex(8)}"
        probe.write_bytes(b"")
    name = broadcast_object_list([probe.name if probe else None])[0]  # sent once the probe exists
    seen = (run_dir / name).exists() if state.is_local_main_process and not state.is_main_process else None
    everyone = gather((this_process(), seen))
    if probe is not None:
        probe.unlink()
    others = [(where, s) for where, s in everyone if s is not None]
    if all(s for _, s in others):
        return False
    if not any(s for _, s in others):
        return True
    raise TrainingSetupError(
        f"train.output_dir={run_dir} is shared by some nodes only (the folder of "
        f"{', '.join(w for w, s in others if s)} is rank 0's, that of {', '.join(w for w, s in others if not s)} "
        "is not): use one shared folder for every node, or a folder of its own on each"
    )


def check_same_checkpoint(path: Path, step: int, *modules: nn.Module) -> None:
    """After a resume every process must hold the same step and weights (a node's folder could hold a checkpoint
    of the same name from another run; DDP would then train diverging copies without a word)."""
    if PartialState().num_processes == 1:
        return
    digest = hashlib.blake2b(digest_size=16)
    for module in modules:
        for key, tensor in module.state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    everyone = gather((this_process(), str(path), step, digest.hexdigest()))
    first = everyone[0]
    differ = [entry for entry in everyone if entry[2:] != first[2:]]
    if differ:
        others = "; ".join(f"{where} loaded {p} (step {s}, other weights)" for where, p, s, _ in differ)
        raise TrainingSetupError(
            f"--resume: the processes loaded different checkpoints: {first[0]} loaded {first[1]} (step {first[2]}), "
            f"but {others}. The nodes' folders hold different runs: copy rank 0's checkpoint folder to the others"
        )


def is_lost_peer(exc: BaseException) -> bool:
    """A collective failed because another process died or stopped answering (torch.distributed / gloo errors)."""
    return isinstance(exc, torch.distributed.DistError) or "gloo" in str(exc)


@contextlib.contextmanager
def reports_lost_peers(timeout_s: int, step: Callable[[], int | None]) -> Iterator[None]:
    """Turn a failed collective into a one-line :class:`PeerLostError` naming the rendezvous (exit code 1).

    A process that died breaks the connection at once; one that hangs (or a node cut off) is given up after
    ``timeout_s`` (``train.ddp_timeout_s``, the process group's timeout).
    """
    try:
        yield
    except RuntimeError as exc:
        if not (torch.distributed.is_initialized() and is_lost_peer(exc)):
            raise
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = re.sub(r"^\[[^\]]*\]\s*", "", line).split(". ")[0]  # gloo: "[file.cc:123] Connection closed..."
        at = step()
        raise PeerLostError(
            f"lost contact with the other training processes{f' after step {at}' if at is not None else ''} "
            f"({this_process()} of {PartialState().num_processes}, rendezvous {rendezvous()}, "
            f"train.ddp_timeout_s={timeout_s}): {reason}. A node died or stopped answering: restart every node "
            "with --resume latest"
        ) from None
