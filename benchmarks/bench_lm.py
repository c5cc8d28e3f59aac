"""Language-model training throughput: `textgen train` next to a bare PyTorch loop of the same shapes.

Both run in this process's machine, interleaved (bare, textgen, bare, textgen, ...), on the same
corpus windows; the ratio of medians is printed (target >= 0.9). Also times `textgen --help`.

    python benchmarks/bench_lm.py [--steps 40] [--repeats 3] [--device cpu|cuda] [--out results/speed/bench-lm.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from textgen.config import load_recipe
from textgen.data.batching import batchify, window
from textgen.device import resolve_device, synchronize
from textgen.results import invocation, make_result, write_result
from textgen.tasks.lm import prepare_data

TEXTGEN = [sys.executable, "-m", "textgen"]


def bare_loop(recipe, ids: torch.Tensor, steps: int, device: torch.device) -> float:
    """The loop a user would write by hand: embedding, fused nn.LSTM, linear, Adam/SGD, clipping."""
    m, t = recipe.model, recipe.train
    torch.manual_seed(0)
    vocab = int(ids.max()) + 1
    embed = nn.Embedding(vocab, m.embed or m.hidden).to(device)
    lstm = nn.LSTM(m.embed or m.hidden, m.hidden, m.layers, batch_first=True, dropout=m.dropout).to(device)
    proj = nn.Linear(m.hidden, vocab).to(device)
    drop = nn.Dropout(m.dropout)
    params = [*embed.parameters(), *lstm.parameters(), *proj.parameters()]
    opt = torch.optim.Adam(params, lr=t.lr) if t.optimizer == "adam" else torch.optim.SGD(params, lr=t.lr)
    streams = batchify(ids, t.batch_size).to(device)
    h = None
    tokens, start = 0, 0.0
    for i in range(steps + 3):
        if i == 3:  # warm-up steps excluded
            synchronize(device)
            tokens, start = 0, time.perf_counter()
        x, y = window(streams, i, t.bptt)
        out, h = lstm(drop(embed(x)), h)
        h = tuple(s.detach() for s in h)
        loss = F.cross_entropy(proj(drop(out)).reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, t.clip)
        opt.step()
        tokens += y.numel()
    synchronize(device)
    return tokens / (time.perf_counter() - start)


def _step_time(recipe, ids: torch.Tensor, device: torch.device) -> float:
    """Seconds per update of the bare loop, from a short calibration run."""
    t = recipe.train
    return t.batch_size * t.bptt / bare_loop(recipe, ids, 5, device)


def textgen_train(recipe_name: str, steps: int, workdir: Path, device: torch.device) -> float:
    """Tokens/s reported by the real `textgen train` command (data windows, progress, CSV included)."""
    cmd = TEXTGEN + [
        "train",
        "-r",
        recipe_name,
        "--set",
        f"train.max_steps={steps}",
        "--set",
        f"train.eval_every={steps}",
        "--set",
        "train.max_minutes=0.0",
        "--device",
        str(device),
        "-o",
        str(workdir / "bench.pt"),
        "--overwrite",  # each measured run replaces the last one's checkpoint
        "--run-dir",
        str(workdir / f"run-{time.time_ns()}"),
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["metrics"]["tokens_per_s"]


def help_seconds(repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(TEXTGEN + ["--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipes", nargs="+", default=["shakespeare", "ptb-small"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (both loops run there)")
    parser.add_argument("--out", type=Path, default=Path("results/speed/bench-lm.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    workdir = Path("runs/bench")
    workdir.mkdir(parents=True, exist_ok=True)
    metrics, shas = {}, {}
    start = time.perf_counter()
    for name in args.recipes:
        recipe = load_recipe(name)
        data = prepare_data(recipe, splits=("train",))
        shas.update(data.sha256)
        # enough steps for ~10 s per run, so start-up costs (first allocations) do not decide the ratio
        step_seconds = _step_time(recipe, data.ids["train"], device)
        steps = max(args.steps, round(10.0 / step_seconds))
        bare, ours = [], []
        for _ in range(args.repeats):
            bare.append(bare_loop(recipe, data.ids["train"], steps, device))
            ours.append(textgen_train(name, steps, workdir, device))
        # textgen's figure includes its own first steps, the bare loop's excludes 3 warm-up steps
        ratio = statistics.median(ours) / statistics.median(bare)
        metrics[f"{name}_bare_tokens_per_s"] = round(statistics.median(bare), 1)
        metrics[f"{name}_textgen_tokens_per_s"] = round(statistics.median(ours), 1)
        metrics[f"{name}_ratio"] = round(ratio, 3)
        metrics[f"{name}_steps"] = steps
        print(
            f"{name:<12} {steps} steps: bare nn.LSTM loop {statistics.median(bare):>9,.0f} tok/s   "
            f"textgen train {statistics.median(ours):>9,.0f} tok/s   ratio {ratio:.2f} (target >= 0.9)"
        )
    metrics["device"] = str(device)
    metrics["help_seconds"] = round(help_seconds(), 3)
    print(f"textgen --help: {metrics['help_seconds']:.2f} s")
    write_result(
        args.out,
        make_result(metrics, shas, time.perf_counter() - start, command=invocation("python benchmarks/bench_lm.py")),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
