"""Two "nodes" on one machine: two torchrun launches (``--nnodes 2``, c10d rendezvous on 127.0.0.1, one gloo
process each; the reference run through ``accelerate launch --num_machines 2``), with one shared run folder and
with a folder of its own per node (no shared filesystem).

Every run must end with the weights of an uninterrupted run on every rank, after one node stalls or is
SIGKILLed mid-run and both are restarted with ``--resume latest``; the survivor must stop with one line naming
the rendezvous (not hang); a shared folder gets each file from one process only; a node whose folder lacks
the checkpoint, or holds another run's, stops every node with one line.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file, save_file
from synthetic import make_permuted_dataset
from test_training_processes import HOOKED, REPO, TIMEOUT, _args, _env, _free_port, _weights

from cyclegan.training.checkpoint import MARKER, list_checkpoints

pytestmark = pytest.mark.slow  # each two-node launch takes ~20 s on 2 cores

STEPS = ("train.max_steps=6", "train.save_every=3")  # 4 images on 2 ranks: 2 steps per epoch, 3 epochs
WRITES = ("torch.save", "save_file", "open")  # --trace-writes events that write a file


def _torchrun(rank: int, port: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
        "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
        "--rdzv-id", f"job{port}", "--max-restarts", "0",
        # c10d orders nodes by address: distinct loopback addresses keep node_rank == rank across restarts
        "--local-addr", f"127.0.0.{rank + 1}",
    ]  # fmt: skip


def _accelerate(rank: int, port: int) -> list[str]:
    """``accelerate launch`` with the README's command-line flags (static rendezvous; gloo on a CPU-only machine)."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2",
        "--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
        "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip


class Node:
    """One node: a launcher (torchrun's agent) in a session of its own, with its one training process."""

    def __init__(self, rank: int, port: int, run: Path, dataset: Path, *extra: str, hooks=(), launcher=_torchrun):
        cmd = [*launcher(rank, port), str(HOOKED), *hooks, *_args(dataset, run, *STEPS, *extra)]
        self.rank = rank
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"node {self.rank} exited ({self.proc.returncode}):\n{self.output[-3000:]}"
            assert time.monotonic() < deadline, f"node {self.rank}: {text!r} not seen in {timeout} s"
            time.sleep(0.2)

    def wait(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """SIGKILL the whole node: the agent and its training process (which runs in a session of its own)."""
        try:
            family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for process in family:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=30)


def _launch(
    dataset: Path | tuple[Path, Path], runs: tuple[Path, Path], *extra: str, hooks=((), ()), launcher=_torchrun
) -> tuple[Node, Node]:
    port, datasets = _free_port(), dataset if isinstance(dataset, tuple) else (dataset, dataset)
    return tuple(  # type: ignore[return-value]
        Node(rank, port, runs[rank], datasets[rank], *extra, hooks=hooks[rank], launcher=launcher) for rank in (0, 1)
    )


def _run(dataset: Path, runs: tuple[Path, Path], *extra: str, hooks=((), ()), launcher=_torchrun) -> tuple[Node, Node]:
    """Both nodes to the end; they must succeed."""
    nodes = _launch(dataset, runs, *extra, hooks=hooks, launcher=launcher)
    try:
        for node in nodes:
            assert node.wait() == 0, f"node {node.rank}:\n{node.output[-4000:]}"
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.kill()
    return nodes


def _fail(dataset: Path | tuple[Path, Path], runs: tuple[Path, Path], *extra: str) -> list[str]:
    """Both nodes must stop with exit code != 0; their `error:` lines."""
    nodes = _launch(dataset, runs, *extra)
    try:
        codes = [node.wait() for node in nodes]
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.kill()
    assert all(codes), [n.output[-3000:] for n in nodes]
    return [line.strip() for node in nodes for line in node.lines if line.startswith("error:")]


def _dumps(folder: Path) -> list[dict[str, torch.Tensor]]:
    return [load_file(folder / f"rank{rank}.safetensors") for rank in (0, 1)]


def _assert_same(expected: dict[str, torch.Tensor], *actual: dict[str, torch.Tensor]) -> None:
    for weights in actual:
        assert weights.keys() == expected.keys() and len(weights) > 40
        differ = [k for k in expected if not torch.equal(expected[k], weights[k])]
        assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"


def _written(trace: Path, rank: int, under: Path) -> list[str]:
    """Files process ``rank`` wrote under ``under`` (rename targets included), in order, relative to ``under``."""
    found = []
    for line in (trace / f"rank{rank}.log").read_text().splitlines():
        event, path = line.split("\t", 1)
        if event == "os.rename":
            path = path.split(" -> ")[1]
        elif event not in WRITES:
            continue
        if path.startswith(f"{under}/"):
            found.append(path[len(str(under)) + 1 :])
    return found


def _complete(ckpt: Path, ranks: tuple[int, ...]) -> None:
    """A checkpoint with its marker, both networks and optimizers, and the RNG states of ``ranks``."""
    names = {p.name for p in ckpt.iterdir()}
    assert {MARKER, "model.safetensors", "model_1.safetensors", "optimizer.bin", "optimizer_1.bin"} <= names
    assert {n for n in names if n.startswith("random_states_")} == {f"random_states_{r}.pkl" for r in ranks}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_permuted_dataset(tmp_path_factory.mktemp("multinode") / "ds", n_train=4, n_test=2, size=40)


@dataclass
class Reference:
    weights: dict[str, torch.Tensor]  # what every run must end with, on every rank
    run: Path


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Reference:
    """An uninterrupted 6-step run of two nodes on one shared folder, launched with ``accelerate launch`` (the
    other runs use torchrun's c10d rendezvous: the two launchers must agree to the bit).

    Also checks that every rank ends with the same weights and that no file of the shared folder has two writers.
    """
    base = tmp_path_factory.mktemp("reference")
    run, dump, trace = base / "run", base / "dump", base / "trace"
    hooks = ("--dump-weights", str(dump), "--trace-writes", str(trace))
    _run(dataset, (run, run), hooks=(hooks, hooks), launcher=_accelerate)
    rank0, rank1 = _dumps(dump)
    _assert_same(rank0, rank1, _weights(run / "checkpoints/step_00000006"))
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [3, 6]
    for step in (3, 6):
        _complete(run / f"checkpoints/step_{step:08d}", ranks=(0, 1))
    by_rank = [_written(trace, rank, run) for rank in (0, 1)]
    assert not set(by_rank[0]) & set(by_rank[1]), "a file of the shared folder was written by both processes"
    assert by_rank[1] == [f"checkpoints/.tmp-step_{s:08d}/random_states_1.pkl" for s in (3, 6)]
    assert {"config.yaml", "checkpoints/step_00000006", "generators/A2B.safetensors"} <= set(by_rank[0])
    checkpoint_writes = [p for p in by_rank[0] if p.startswith("checkpoints/")]
    assert len(checkpoint_writes) == len(set(checkpoint_writes)), "a checkpoint file was written twice"
    return Reference(rank0, run)


def test_shared_folder_node_hangs_then_killed_resumes_exactly(dataset, reference, tmp_path):
    """Node 1 stalls after checkpoint 3 (a hung node): node 0 gives up after train.ddp_timeout_s with one line
    naming the rendezvous and exit code != 0; node 1 is SIGKILLed; both restart with --resume latest and end
    with the reference weights."""
    run, trace = tmp_path / "run", tmp_path / "trace"
    timeout_s = 15
    nodes = _launch(
        dataset, (run, run), f"train.ddp_timeout_s={timeout_s}",
        hooks=(("--trace-writes", str(trace)), ("--fault", "after_checkpoint@3", "--trace-writes", str(trace))),
    )  # fmt: skip
    try:
        nodes[1].wait_for("FAULT after_checkpoint@3")
        stalled = time.monotonic()
        assert nodes[0].wait(timeout=timeout_s + 60) != 0
        gave_up_after = time.monotonic() - stalled
        nodes[1].kill()
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.kill()
    errors = [line for line in nodes[0].lines if line.startswith("error:")]
    assert len(errors) == 1, nodes[0].output[-3000:]
    assert "lost contact with the other training processes after step 3" in errors[0]
    assert "rendezvous 127.0.0.1:" in errors[0] and f"ddp_timeout_s={timeout_s}" in errors[0]
    assert timeout_s - 2 < gave_up_after < timeout_s + 45
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [3]
    _complete(run / "checkpoints/step_00000003", ranks=(0, 1))
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert _written(trace, 1, run) == ["checkpoints/.tmp-step_00000003/random_states_1.pkl"]

    dump = tmp_path / "dump"
    hooks = ("--dump-weights", str(dump))
    _run(dataset, (run, run), "--resume", "latest", hooks=(hooks, hooks))
    _assert_same(reference.weights, *_dumps(dump), _weights(run / "checkpoints/step_00000006"))
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_own_folders_node_killed_resumes_exactly(dataset, reference, tmp_path):
    """A folder per node: each keeps a full checkpoint (save_on_each_node). Node 1 is SIGKILLed after checkpoint 3:
    node 0 stops at once with one line. A node lacking the checkpoint, or holding another run's, stops both
    nodes with one line; with the folders as they were, both resume and end with the reference weights."""
    runs, trace = (tmp_path / "node0", tmp_path / "node1"), tmp_path / "trace"
    nodes = _launch(
        dataset, runs,
        hooks=(("--trace-writes", str(trace)), ("--fault", "after_checkpoint@3", "--trace-writes", str(trace))),
    )  # fmt: skip
    try:
        nodes[1].wait_for("FAULT after_checkpoint@3")
        nodes[1].kill()
        killed = time.monotonic()
        assert nodes[0].wait(timeout=60) != 0
        survivor_stopped_after = time.monotonic() - killed
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.kill()
    errors = [line for line in nodes[0].lines if line.startswith("error:")]
    assert len(errors) == 1 and "lost contact with the other training processes" in errors[0], nodes[0].output
    assert survivor_stopped_after < 30
    for rank, run in enumerate(runs):
        assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [3]
        _complete(run / "checkpoints/step_00000003", ranks=(0, 1))  # every rank's RNG states on every node
        assert (run / "config.yaml").is_file()
        assert not _written(trace, rank, runs[1 - rank])
    assert "checkpoints/step_00000003" in _written(trace, 1, runs[1])  # node 1 committed its own copy
    ckpt0, ckpt1 = (run / "checkpoints/step_00000003" for run in runs)
    for name in (p.name for p in ckpt0.iterdir()):  # the two copies are the same files: either resumes both
        assert (ckpt0 / name).read_bytes() == (ckpt1 / name).read_bytes(), name
    assert not (runs[1] / "generators").exists()  # exported generators, samples, metrics: rank 0's folder only

    # Node 1's folder lacks the checkpoint: both nodes stop, naming what each holds.
    aside = tmp_path / "aside"
    shutil.move(ckpt1, aside)
    errors = _fail(dataset, runs, "--resume", "latest")
    assert len(errors) == 2 and len(set(errors)) == 1, errors
    assert "no checkpoint step is complete on every process" in errors[0]
    assert "rank 1 on" in errors[0] and f"none in {runs[1]}/checkpoints" in errors[0]
    # Node 1's folder holds a checkpoint of the same step from another run: caught after loading.
    shutil.copytree(ckpt0, ckpt1)
    tensors = load_file(ckpt1 / "model.safetensors")
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1
    save_file(tensors, ckpt1 / "model.safetensors", metadata={"format": "pt"})
    errors = _fail(dataset, runs, "--resume", "latest")
    assert len(errors) == 2 and "the processes loaded different checkpoints" in errors[0], errors
    shutil.rmtree(ckpt1)
    shutil.move(aside, ckpt1)
    # Node 0 also holds step 6 (as if node 1 had died before renaming its copy): both resume from step 3 and
    # node 0 writes step 6 again along with node 1 (a per-node "already saved" look would leave one alone).
    shutil.copytree(reference.run / "checkpoints/step_00000006", runs[0] / "checkpoints/step_00000006")

    dump = tmp_path / "dump"
    hooks = ("--dump-weights", str(dump))
    nodes = _run(dataset, runs, "--resume", "latest", hooks=(hooks, hooks))
    assert "warning: resuming every process from step 3" in nodes[0].output
    _assert_same(reference.weights, *_dumps(dump))
    for run in runs:  # both nodes' copies of the final checkpoint
        _assert_same(reference.weights, _weights(run / "checkpoints/step_00000006"))


def test_nodes_with_other_training_images_stop_before_training(dataset, tmp_path):
    """Node 1 has no dataset, then a copy lacking one image (the data order would differ silently): both nodes
    stop with node 1's problem in one line, before anything is written."""
    runs, other = (tmp_path / "node0", tmp_path / "node1"), tmp_path / "ds"
    errors = _fail((dataset, other), runs)
    assert len(errors) == 2 and len(set(errors)) == 1, errors
    assert errors[0].startswith("error: rank 1 on") and str(other) in errors[0]
    shutil.copytree(dataset, other)
    next((other / "trainB").iterdir()).unlink()
    errors = _fail((dataset, other), runs)
    assert len(errors) == 2 and "the nodes' training images differ" in errors[0], errors
    assert "rank 1 on" in errors[0] and "7 images in" in errors[0]
    assert not runs[0].exists() and not runs[1].exists()  # nothing written
