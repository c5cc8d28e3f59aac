"""Mixed precision on CPU: bf16 autocast, about twice as fast where the CPU has AVX512-BF16 or AMX.

Matmuls and LSTM cells run in bf16; losses, log-softmax and the weights stay fp32 (autocast's CPU
policy), so checkpoints are the same fp32 files either way.
"""

from __future__ import annotations

import contextlib

from textgen.errors import UserError

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str | None) -> str | None:
    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"unknown precision '{precision}': choose from {', '.join(PRECISIONS)}")
    return precision


def autocast(precision: str):
    """The context that runs the forward pass (training step or decoding) at `precision`."""
    if precision == "bf16":
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
