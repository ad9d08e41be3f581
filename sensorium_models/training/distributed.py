"""Training on several processes: ``torchrun`` and DistributedDataParallel.

``torchrun --nproc-per-node K -m sensorium_models.torchrun ARGS`` (or ``sensorium train --nproc
K ARGS``) starts K processes; each opens the stores itself and reads its share of every
epoch (:class:`sensorium_data.MouseBatchSampler` with ``num_replicas=K``), the model is
wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, and rank 0 alone writes the
run directory. ``batch_size`` stays the batch of one optimizer step, over all ranks: each
rank takes ``batch_size / K`` clips and scales its data loss by K, so that DDP's mean of the
ranks' gradients is the gradient of the whole batch (the summed loss of one process).
Resuming works with any number of processes: nothing in ``last.pt`` depends on it.

Backends: NCCL on CUDA (one GPU per rank, ``cuda:LOCAL_RANK``, batch norm synchronised
across ranks with :class:`~torch.nn.SyncBatchNorm`), gloo on the CPU (batch norm then
normalises with each rank's own half-batch, as plain DDP does).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import torch
import torch.distributed as dist
from torch import nn

from sensorium_models.training.config import ConfigError
from sensorium_models.training.guards import TrainingFailedError

if TYPE_CHECKING:
    from sensorium_models.training.config import TrainConfig

log = logging.getLogger(__name__)
M = TypeVar("M", bound=nn.Module)

# How long a rank waits in a collective for the others (a dead peer is usually noticed at
# once: its connections close).
TIMEOUT = timedelta(minutes=10)


class DistributedError(TrainingFailedError):
    """A rank of a distributed run failed or lost its peers (the CLI prints it as one line)."""


@dataclass(frozen=True)
class World:
    """The processes of a run: how many, and which one this is."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run directory."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def current() -> World:
    """The world of the initialised process group, else one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_world_size(), dist.get_rank(),
                 int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def from_environment() -> World:
    """The world ``torchrun`` describes in ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``."""
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
    try:
        size, rank, local = (int(os.environ.get(n, d)) for n, d in zip(names, "100", strict=True))
    except ValueError:
        values = {n: os.environ.get(n) for n in names}
        msg = (f"torchrun's variables {values} are not integers; start distributed runs with "
               "torchrun (or sensorium train --nproc K), which sets them.")
        raise ValueError(msg) from None
    if size < 1 or not 0 <= rank < size:
        msg = (f"RANK={rank} with WORLD_SIZE={size}; the rank must be in 0..{size - 1}. Start "
               "distributed runs with torchrun (or sensorium train --nproc K).")
        raise ValueError(msg)
    return World(size, rank, local)


def check_config(config: TrainConfig, size: int) -> None:
    """Refuse what cannot train on ``size`` processes, naming the key and the fix."""
    if size == 1:
        return
    if config.mixed_mice:
        msg = (f"mixed_mice=true on {size} processes: batches that mix mice run the core and "
               "readouts outside DistributedDataParallel's forward, which cannot synchronise "
               "their gradients; train them on one process (without --nproc / torchrun), or "
               "drop mixed_mice (and teacher, which needs it).")
        raise ConfigError(msg)
    if config.batch_size % size:
        msg = (f"batch_size={config.batch_size} on {size} processes: each rank takes an equal "
               f"share of the batch; pass a batch_size divisible by {size} (e.g. "
               f"{-(-config.batch_size // size) * size}).")
        raise ConfigError(msg)


@contextmanager
def session(config: TrainConfig) -> Iterator[World]:
    """The run's process group: started here from torchrun's variables (and ended at the
    end) unless one is already initialised; one process without them."""
    if dist.is_available() and dist.is_initialized():
        world = current()
        check_config(config, world.size)
        yield world
        return
    world = from_environment()
    check_config(config, world.size)
    if not world.active:
        yield world
        return
    cuda = torch.cuda.is_available() and str(config.device) in ("auto", "cuda")
    # NCCL moves only CUDA tensors: the small CPU messages (the run folder, the epoch's
    # loss) go through gloo beside it
    backend = "cuda:nccl,cpu:gloo" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend, timeout=TIMEOUT)
    log.info("rank %d of %d (%s)", world.rank, world.size, backend)
    try:
        yield world
    finally:
        dist.destroy_process_group()


def rank_device(device: torch.device, world: World) -> torch.device:
    """A rank's device: ``cuda:LOCAL_RANK`` for ``cuda`` without an index."""
    if world.active and device.type == "cuda" and device.index is None:
        return torch.device("cuda", world.local_rank)
    return device


def wrap(model: M, device: torch.device, world: World) -> tuple[M, nn.Module]:
    """``(model, forward)``: on several processes, the model with synchronised batch norm
    (CUDA) and its DistributedDataParallel wrapper; else the model twice."""
    if not world.active:
        return model, model
    if device.type == "cuda":
        model = cast(M, nn.SyncBatchNorm.convert_sync_batchnorm(model))
    ids = [device.index] if device.type == "cuda" else None
    # each batch uses one mouse's readout: the other readouts get no gradient on that rank
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                    find_unused_parameters=True)
    return model, ddp


def mean(value: float, world: World) -> float:
    """The mean of ``value`` over the ranks."""
    if not world.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def broadcast_module(module: nn.Module, world: World) -> None:
    """Rank 0's parameters and buffers, copied in place into every rank's ``module``."""
    if not world.active:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, 0)


def share_folder(folder: Path, world: World) -> Path:
    """Rank 0's run directory, on every rank (sent as bytes: nothing is pickled)."""
    if not world.active:
        return folder
    size = torch.zeros(1, dtype=torch.int64)
    raw = os.fsencode(folder)
    if world.main:
        size[0] = len(raw)
    dist.broadcast(size, 0)
    buffer = torch.zeros(int(size[0]), dtype=torch.uint8)
    if world.main:
        buffer.copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    dist.broadcast(buffer, 0)
    return Path(os.fsdecode(bytes(buffer.tolist())))


def _is_collective_failure(error: BaseException) -> bool:
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        s in text for s in ("gloo", "Gloo", "NCCL", "Connection closed", "Connection reset"))


@contextmanager
def guard(world: World, folder: Path, epoch: int) -> Iterator[None]:
    """Turn a failed collective (a peer died or hung) into :class:`DistributedError` naming
    the run, its last complete epoch and how to resume."""
    try:
        yield
    except Exception as e:
        if not world.active or not _is_collective_failure(e):
            raise
        msg = (f"rank {world.rank} of {world.size} stopped in epoch {epoch + 1}: another rank "
               f"failed or stopped answering ({type(e).__name__}: {str(e).splitlines()[0]}). "
               f"{folder / 'last.pt'} holds epoch {epoch} intact; continue with `sensorium "
               f"train --resume {folder}` (any --nproc).")
        raise DistributedError(msg) from e


def train_arguments(args: argparse.Namespace) -> list[str]:
    """The flags of ``sensorium train`` that ``args`` holds, but ``--nproc``."""
    out: list[str] = []
    for name in ("model", "config", "out", "fold", "resume", "device", "max_epochs"):
        value = getattr(args, name, None)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    if args.mice:
        out += ["--mice", *args.mice]
    for text in args.set or []:
        out += ["--set", text]
    if getattr(args, "verbose", False):
        out.append("--verbose")
    return out


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``sensorium train ARGV`` on ``nproc`` local processes through ``torchrun``;
    return its exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "sensorium_models.torchrun", *argv]
    log.info("starting %s", " ".join(command))
    return subprocess.run(command, check=False).returncode
