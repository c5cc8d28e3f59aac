"""Why data.target_vocab pads the target side to a multiple of 64: the output layer's time at the
Multi30k target width (3,963 pieces) against the padded width (3,968) and the joint 8,000, side by side in one
run. Decoding: one beam-5 step of 100 sentences (500 rows) with 2 threads; training: forward and backward of
~1,400 target positions with label-smoothed cross-entropy on 1 thread.

    python benchmarks/bench_output_width.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from textgen.results import invocation, make_result, write_result

WIDTHS = (3963, 3968, 8000)


def best_ms(fn, repeats: int, calls: int) -> float:
    """The fastest of `repeats` timings of `calls` calls, in ms per call (the least disturbed by other jobs)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1000)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/speed/bench-output-width.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    for width in WIDTHS:
        weight, bias = torch.randn(width, args.hidden) * 0.05, torch.zeros(width)
        torch.set_num_threads(2)
        rows = torch.randn(500, args.hidden)
        metrics[f"decode_step_ms_{width}"] = best_ms(
            lambda: F.linear(rows, weight, bias).log_softmax(-1), args.repeats, 40
        )
        torch.set_num_threads(1)
        feats = torch.randn(1400, args.hidden, requires_grad=True)
        w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
        targets = torch.randint(4, 3963, (1400,))

        def train_step():
            F.cross_entropy(F.linear(feats, w, b), targets, label_smoothing=0.1, reduction="sum").backward()

        metrics[f"train_step_ms_{width}"] = best_ms(train_step, args.repeats, 8)
    for kind in ("decode_step", "train_step"):
        metrics[f"{kind}_3963_over_3968"] = metrics[f"{kind}_ms_3963"] / metrics[f"{kind}_ms_3968"]
        print(
            f"{kind}: "
            + " | ".join(f"{w} wide {metrics[f'{kind}_ms_{w}']:.2f} ms" for w in WIDTHS)
            + f" | 3,963 takes {metrics[f'{kind}_3963_over_3968']:.2f}x the time of 3,968"
        )
    metrics = {k: round(v, 3) for k, v in metrics.items()}
    command = invocation("python benchmarks/bench_output_width.py")
    write_result(args.out, make_result(metrics, {}, time.perf_counter() - start, command=command))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
