"""Where tensors live: `--device auto|cpu|cuda|cuda:N|mps`, checked once, with a one-line error.

Models are built on the CPU and moved; batches are made on the host and copied per step; every
tensor created inside a step or a decoder takes the device of its inputs (tests/test_device.py
checks that on a CPU). Checkpoints are always loaded to the CPU first, so they move between machines.
"""

from __future__ import annotations

import torch

from textgen.errors import UserError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto`: this rank's GPU when torch sees CUDA, else the CPU. Under torchrun, `cuda` means cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = local_rank if device.index is None else device.index
        if count == 0:
            why = (
                "this torch is a CPU-only build"
                if torch.version.cuda is None
                else "check the driver and CUDA_VISIBLE_DEVICES"
            )
            raise UserError(f"device '{name}' asked for, but torch sees no CUDA device ({why}): use --device cpu")
        if index >= count:
            raise UserError(
                f"there is no CUDA device {index} (this machine has {count}): use fewer processes or another cuda:N"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("device 'mps' asked for, but this torch has no MPS (Apple GPU) support: use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps")
    return device


def rng_state(device: torch.device) -> dict:
    """The device's own random stream (CUDA sampling and dropout), for exact resume; empty on the CPU."""
    if device.type == "cuda":
        return {"cuda": torch.cuda.get_rng_state(device)}
    return {}


def set_rng_state(state: dict, device: torch.device) -> None:
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock reading means what it says (benchmarks)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
