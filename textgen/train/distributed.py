"""Data parallelism: which rank this process is, and the few collectives the training loop needs.

`torchrun --nproc-per-node N -m textgen train ...` (or `textgen train --nproc N`, which launches the
ranks itself so that Ctrl-C and errors stay one clean line) starts N processes;
each reads its own shard of the batches, DistributedDataParallel averages the gradients, and only
rank 0 validates, logs and writes checkpoints. On GPUs each rank drives cuda:LOCAL_RANK and the
process group is NCCL; on CPUs it is gloo.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from textgen.device import resolve_device
from textgen.errors import RankError, UserError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")  # where this rank's model, batches and collectives live

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env(device: str = "cpu") -> Dist:
    """Join the process group torchrun describes in the environment; a plain run is world 1.

    `device` is the --device setting: under torchrun, `auto`/`cuda` mean this rank's GPU, cuda:LOCAL_RANK."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist(device=resolve_device(device))
    import torch.distributed as dist

    try:
        placed = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    except UserError as exc:  # before joining the group: the other ranks' torchrun sees this one exit
        raise RankError(f"rank {os.environ.get('RANK', '?')}: {exc}") from None
    if placed.type == "cuda":
        torch.cuda.set_device(placed)  # NCCL's object collectives use the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if placed.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), placed)


def shutdown(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist

        dist.destroy_process_group()


def all_sum(d: Dist, values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64, so token counts stay exact)."""
    if not d.active:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=d.device)  # NCCL reduces device tensors only
    dist.all_reduce(t)
    return t.tolist()


def any_rank(d: Dist, flags: list[bool]) -> list[bool]:
    """Element-wise OR over ranks: one rank's Ctrl-C or spent budget stops all of them at the same step."""
    if not d.active:
        return flags
    import torch.distributed as dist

    t = torch.tensor([float(f) for f in flags], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def main_first(d: Dist, make, follow):
    """`make()` on rank 0, then `follow(rank 0's result)` on the other ranks; a UserError on rank 0 reaches
    every rank, so none waits at a collective for a rank that has failed (e.g. rank 0 prepares the corpus,
    the others map its folder). Ranks simulated in one process (tests) have no process group: each makes."""
    import torch.distributed as dist

    if not (d.active and dist.is_available() and dist.is_initialized()):
        return make()
    box: list = [None]
    if d.main:
        try:
            out = make()
        except UserError as exc:
            dist.broadcast_object_list([("error", str(exc))], src=0)
            raise
        dist.broadcast_object_list([("ok", out)], src=0)
        return out
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise UserError(f"rank 0 failed: {value}")
    return follow(value)


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


def wrap(d: Dist, module: torch.nn.Module, may_skip_parameters: bool) -> torch.nn.Module:
    """DDP around `module` when running distributed; it broadcasts rank 0's weights at construction.

    `may_skip_parameters`: some parameters can get no gradient in a step (MIXER's baseline regressor
    during its pure-XENT stage), which DDP must then look for."""
    if not d.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [d.device] if d.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=may_skip_parameters)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(nproc: int, argv: list[str], device: str = "auto") -> int:
    """Run `textgen ARGV` (without --nproc) as `nproc` local ranks, as torchrun would; returns the exit code.

    The ranks share this terminal's process group, so Ctrl-C reaches each of them (they agree to stop,
    rank 0 saves last.pt); this process only waits. If a rank fails, the others are stopped."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("--nproc is for a plain run; under torchrun leave it out")
    resolve_device(device, local_rank=nproc - 1)  # here, once: rank N-1 needs cuda:N-1 when on GPUs
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    base = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ranks = [
        subprocess.Popen([sys.executable, "-m", "textgen", *args], env={**base, "RANK": str(r), "LOCAL_RANK": str(r)})
        for r in range(nproc)
    ]
    codes: dict[int, int] = {}
    while len(codes) < nproc:
        for r, proc in enumerate(ranks):
            if r not in codes and proc.poll() is not None:
                codes[r] = proc.returncode
                if proc.returncode not in (0, 130, 143):  # a crash: the others would wait for it forever
                    for other in ranks:
                        if other.poll() is None:
                            other.kill()
        time.sleep(0.2)
    return codes[0] or max(codes.values(), key=abs)
