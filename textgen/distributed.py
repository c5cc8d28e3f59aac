"""Data parallelism: which rank this process is, and the few collectives the training loop needs.

`torchrun --nproc-per-node N -m textgen train ...` (or `textgen train --nproc N`) starts N processes;
each reads its own shard of the batches, DistributedDataParallel averages the gradients, and only
rank 0 validates, logs and writes checkpoints. textgen trains on CPU, so the process group is gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Dist:
    """Join the process group torchrun describes in the environment; a plain run is world 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def shutdown(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist

        dist.destroy_process_group()


def all_sum(d: Dist, values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64, so token counts stay exact)."""
    if not d.active:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def any_rank(d: Dist, flags: list[bool]) -> list[bool]:
    """Element-wise OR over ranks: one rank's Ctrl-C or spent budget stops all of them at the same step."""
    if not d.active:
        return flags
    import torch.distributed as dist

    t = torch.tensor([float(f) for f in flags])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def from_main(d: Dist, obj):
    """Rank 0's value of `obj` on every rank (e.g. validation results that drive the LR schedule)."""
    if not d.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(d: Dist, obj) -> list:
    """Every rank's `obj`, in rank order (per-rank RNG and carried state for the checkpoint)."""
    if not d.active:
        return [obj]
    import torch.distributed as dist

    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def check_in_sync(d: Dist, module: torch.nn.Module) -> None:
    """Fail loudly if replicas have drifted apart: that would be a bug in textgen, not in the input."""
    if not d.active:
        return
    with torch.no_grad():
        checksum = sum(float(p.double().abs().sum()) for p in module.parameters())
    sums = gather(d, checksum)
    if max(sums) - min(sums) > 1e-9 * max(1.0, abs(sums[0])):
        raise RuntimeError(f"data-parallel replicas differ (parameter checksums {sums})")


def wrap(d: Dist, module: torch.nn.Module) -> torch.nn.Module:
    """DDP around `module` when running distributed; it broadcasts rank 0's weights at construction.

    find_unused_parameters: an objective's extra parameters (MIXER's baseline regressor) get no
    gradient during its pure-XENT stage."""
    if not d.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, find_unused_parameters=True)


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command that re-runs `textgen ARGV` (with --nproc removed) as `nproc` ranks."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "textgen", *args]
