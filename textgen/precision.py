"""Mixed precision: bf16 autocast (CPU or GPU) and fp16 autocast with loss scaling (GPU).

Matmuls, attention and LSTM cells run in the low precision; losses, log-softmax and the weights stay
fp32 (autocast's policy), so checkpoints are the same fp32 files either way. On CPUs with
AVX512-BF16 or AMX, bf16 is ~1.5x faster to train. oneDNN runs a bf16 LSTM only there: a model
with an LSTM is refused bf16 on other CPUs, a Transformer (no LSTM) runs it anywhere. fp16 needs a
GradScaler (its gradients underflow without one) and CUDA: CPU LSTMs have no fp16 kernels.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from textgen.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device, model: torch.nn.Module | None = None) -> None:
    """A --precision given on the command line bypasses the recipe's checked choices; fp16 needs CUDA; bf16 on
    the CPU needs oneDNN's bf16 LSTM when `model` has an LSTM (None: a model not known yet, assumed to)."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision '{precision}': choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UserError(
            f"precision fp16 needs a CUDA device (this run is on {device.type}, which has no fp16 LSTM): use bf16 here"
        )
    has_lstm = model is None or any(isinstance(m, torch.nn.LSTM) for m in model.modules())
    if precision == "bf16" and device.type == "cpu" and has_lstm and not cpu_runs_bf16_lstm():
        raise UserError(
            "precision bf16 needs a CPU with AVX512-BF16 or AMX for this model's LSTM (oneDNN has no bf16 LSTM on "
            "this one): use fp32 here, or model.arch = transformer"
        )


@functools.cache
def cpu_runs_bf16_lstm() -> bool:
    """Whether oneDNN can run an LSTM under CPU bf16 autocast: AVX2-only CPUs fail at the first forward pass."""
    lstm = torch.nn.LSTM(2, 2)
    try:
        with torch.no_grad(), autocast("bf16"):
            lstm(torch.zeros(1, 1, 2))
    except RuntimeError:
        return False
    return True


def autocast(precision: str, device: torch.device = torch.device("cpu")):
    """The context that runs the forward pass (training step or decoding) at `precision` on `device`."""
    if precision in _DTYPES:
        return torch.autocast(device.type, dtype=_DTYPES[precision])
    return contextlib.nullcontext()


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (skips steps whose gradients overflow); a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
