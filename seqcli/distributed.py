"""Data parallelism under torchrun: the process group, batch shards, gradient sums, shared translation.

`torchrun` starts one process per device and tells each its place in the job through the
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Every process builds the
same model from the same seed and computes the same batch list; each trains on its own share
of the batches, and DistributedDataParallel sums the gradients, so all replicas take the same
update. Without torchrun's environment everything here is a no-op for a world of one.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from seqcli.errors import UsageError

T = TypeVar("T")

# Rank 0 validates (or reads a slow input) while the others wait in a collective call; NCCL's
# default of 10 minutes would end a job whose validation takes longer.
COLLECTIVE_TIMEOUT = timedelta(hours=1)


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one job; rank 0 is the one that writes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    def broadcast(self, value: T) -> T:
        """Rank 0's value (any picklable object), on every rank."""
        if not self.is_distributed:
            return value
        box: list[object] = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def from_main(self, make: Callable[[], T]) -> T:
        """Call make on rank 0 only and hand its result to every rank (e.g. trained tokenizers)."""
        if not self.is_distributed:
            return make()
        box: list[object] = [make() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def sum(self, values: Tensor) -> Tensor:
        """The element-wise sum of values over all ranks (values on this process's device)."""
        if self.is_distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values


def current_world() -> World:
    """The world of the process group joined by `join_torchrun_job`, or a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(rank=dist.get_rank(), size=dist.get_world_size())
    return World()


def _environment_int(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r}: torchrun's environment variable must be an integer") from None


def join_torchrun_job(device: str) -> str:
    """Join torchrun's process group when launched by it; returns the device this process uses.

    device: cpu, cuda, cuda:N or auto. On GPUs the backend is NCCL and each process takes the
    GPU numbered by its LOCAL_RANK (unless device names one); on CPUs it is Gloo. Without
    torchrun's environment (or with a world of one) nothing is started and device is returned.
    """
    world_size = _environment_int("WORLD_SIZE", 1)
    if world_size <= 1 or dist.is_initialized():
        return device
    rank, local_rank = _environment_int("RANK", 0), _environment_int("LOCAL_RANK", 0)
    uses_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if uses_cuda:
        if device in ("auto", "cuda"):
            device = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(device))
    elif device == "auto":
        device = "cpu"
    backend = "nccl" if uses_cuda else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=COLLECTIVE_TIMEOUT)
    return device


def leave_torchrun_job() -> None:
    """After a command's work is done: wait for every rank, then close the process group.

    Without the barrier a rank that finishes first tears its connections down while another
    still talks to it, and Gloo aborts. After an error nothing is closed: torchrun ends the
    other ranks when one fails.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # DistributedDataParallel (perhaps in a reference cycle) goes first
        dist.barrier()
        dist.destroy_process_group()


@contextmanager
def torchrun_job(device: str) -> Iterator[str]:
    """`join_torchrun_job` on entry (yields the device to use), `leave_torchrun_job` on a normal exit.

    Every way out of the block but an error leaves the job once; after an error nothing is
    closed, as leave_torchrun_job says.
    """
    yield join_torchrun_job(device)
    leave_torchrun_job()


def shard_updates(
    batches: Sequence[Sequence[int]], world: World, accum_steps: int
) -> list[Sequence[Sequence[int]]]:
    """This rank's micro-batches, grouped by update: a list of updates of accum_steps batches.

    Every rank computes the same batch list. Update u covers the batches
    [u * n, (u + 1) * n) with n = world.size * accum_steps, and rank r trains on every
    world.size-th of them starting at r, i.e. on batches r, r + W, r + 2W, ... overall. The
    last batches of an epoch that do not fill an update are left out, so that every rank makes
    the same number of updates (the collective calls need it); with one process and no
    accumulation nothing is left out.
    """
    per_update = world.size * accum_steps
    n_updates = len(batches) // per_update
    return [
        batches[u * per_update + world.rank : (u + 1) * per_update : world.size] for u in range(n_updates)
    ]


def data_parallel(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """The module to train through: DistributedDataParallel in a job of several processes.

    Every parameter of every configuration (cells, attentions, bridges) takes part in each
    update's loss, so DDP need not search the graph for unused ones; a module that sometimes
    sits out would need find_unused_parameters=True (DDP says so in its error).
    """
    if not world.is_distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def gradient_sync(model: nn.Module, is_last_micro_batch: bool) -> AbstractContextManager[object]:
    """Sum gradients across processes only on the last micro-batch of an update (DDP's no_sync)."""
    if isinstance(model, DistributedDataParallel) and not is_last_micro_batch:
        return model.no_sync()
    return nullcontext()


def scale_gradients(model: nn.Module, factor: float) -> None:
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.mul_(factor)


def translate_chunks_in_shares(
    translate: Callable[[list[str]], list[str]],
    chunks: Iterable[list[str]],
    world: World,
) -> Iterator[list[str]]:
    """Translate chunks of lines with every process of the job; rank 0 yields each chunk's
    translations, in input order, as soon as that chunk is done.

    translate: one output line per input line, e.g. Translator.translate_chunk. Rank 0 reads
    `chunks` (the other ranks pass an empty iterable and yield nothing), deals each chunk out
    line by line (line i to rank i mod W, so the ranks get similar lengths), and gathers the
    translations back. Greedy and beam search do not depend on how sentences are batched, so
    the output equals a single process's.
    """
    if not world.is_distributed:
        for chunk in chunks:
            yield translate(chunk)
        return
    iterator = iter(chunks)
    while True:
        share = _deal_round(iterator, world)
        if share is None:
            return
        translations = translate(share)
        gathered: list[list[str]] | None = [[] for _ in range(world.size)] if world.is_main else None
        dist.gather_object(translations, gathered, dst=0)
        if gathered is not None:
            yield list(_interleave(gathered))


def _deal_round(chunks: Iterator[list[str]], world: World) -> list[str] | None:
    """Rank 0 takes the next chunk and scatters it; None on every rank at the end."""
    shares: list[list[str] | None] | None = None
    if world.is_main:
        round_lines = next(chunks, [])
        shares = [round_lines[r :: world.size] if round_lines else None for r in range(world.size)]
    box: list[list[str] | None] = [None]
    dist.scatter_object_list(box, shares, src=0)
    return box[0]


def _interleave(shares: list[list[str]]) -> Iterator[str]:
    """Undo the dealing: line k of rank r was line r + k * W of the round."""
    for k in range(len(shares[0])):
        for share in shares:
            if k < len(share):
                yield share[k]
