"""``train_accel.py`` with test hooks, for the process tests (the hooks live here, not in the product code).

    python tests/hooked_train.py [--fault STAGE@STEP] [--dump-weights DIR] <train_accel.py arguments>

``--fault in_checkpoint@N`` stalls after checkpoint N's files are written, before it is marked complete;
``--fault after_checkpoint@N`` stalls once checkpoint N is complete. Either prints ``FAULT STAGE@N`` first,
so the test knows when to SIGKILL. ``--dump-weights DIR`` writes each rank's final four networks to
``DIR/rank<R>.safetensors``. ``--trace-writes DIR`` logs every file this process writes, renames, creates
or removes to ``DIR/rank<R>.log`` (``event<TAB>path`` lines; R = torchrun's RANK).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cyclegan.training import checkpoint, trainer  # noqa: E402
from cyclegan.training.cli import main  # noqa: E402


def _stall(label: str) -> None:
    print(f"FAULT {label}: stalling", flush=True)
    while True:
        time.sleep(60)


def install_fault(spec: str) -> None:
    stage, step = spec.split("@")
    writer = checkpoint.CheckpointWriter
    if stage == "in_checkpoint":
        commit = writer._commit

        def stalled_commit(self, tmp, final, info):
            if info["step"] == int(step):
                _stall(spec)
            commit(self, tmp, final, info)

        writer._commit = stalled_commit
    elif stage == "after_checkpoint":
        save = writer.save

        def stalled_save(self, accelerator, at_step, info):
            path = save(self, accelerator, at_step, info)
            if at_step == int(step):
                _stall(spec)
            return path

        writer.save = stalled_save
    else:
        raise SystemExit(f"unknown fault stage {stage!r}")


def install_dump(folder: Path) -> None:
    from safetensors.torch import save_file

    train = trainer.train

    def train_and_dump(*args, **kwargs):
        result = train(*args, **kwargs)
        from accelerate import PartialState

        tensors = {f"G.{k}": v for k, v in result.generators.state_dict().items()}
        tensors.update({f"D.{k}": v for k, v in result.discriminators.state_dict().items()})
        folder.mkdir(parents=True, exist_ok=True)
        rank = PartialState().process_index
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(folder / f"rank{rank}.safetensors")
        )
        return result

    trainer.train = train_and_dump


def install_trace(folder: Path) -> None:
    """Python-level writers (torch.save, safetensors' save_file) plus audit events (open for writing, rename,
    mkdir, rmtree, remove): together everything a training process writes into its run folder."""
    import accelerate.utils.other
    import torch

    from cyclegan import generator_io

    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / f"rank{os.environ.get('RANK', '0')}.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def record(event: str, path) -> None:
        log.write(f"{event}\t{os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else path}\n")

    def traced(event: str, save):
        def wrapper(obj, path, *args, **kwargs):
            record(event, path)
            return save(obj, path, *args, **kwargs)

        return wrapper

    torch.save = traced("torch.save", torch.save)
    accelerate.utils.other.safe_save_file = traced("save_file", accelerate.utils.other.safe_save_file)
    generator_io.save_file = traced("save_file", generator_io.save_file)
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def audit(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            if (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & writes):
                record("open", args[0])
        elif event == "os.rename":
            record(event, f"{os.fsdecode(args[0])} -> {os.fsdecode(args[1])}")
        elif event in ("os.mkdir", "shutil.rmtree", "os.remove"):
            record(event, args[0])

    sys.addaudithook(audit)


def _pop_option(args: list[str], name: str) -> str | None:
    if name not in args:
        return None
    index = args.index(name)
    value = args[index + 1]
    del args[index : index + 2]
    return value


if __name__ == "__main__":
    argv = sys.argv[1:]
    if (fault := _pop_option(argv, "--fault")) is not None:
        install_fault(fault)
    if (dump := _pop_option(argv, "--dump-weights")) is not None:
        install_dump(Path(dump))
    if (trace := _pop_option(argv, "--trace-writes")) is not None:
        install_trace(Path(trace))
    main(argv)
