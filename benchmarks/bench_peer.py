"""Cost per core against OpenNMT-py: `textgen train --recipe translate-multi30k` target tokens/s
with one and two threads, and `textgen eval` test2016 sentences/s (greedy, beam 5) with two, for the joint
8k output vocabulary and for the decoder restricted to the target side's pieces (data.target_vocab =
"targets"), next to the figures OpenNMT-py 3.5.1 reached on this machine with the same model shape.

The two textgen variants are measured side by side in one run, interleaved. OpenNMT-py needs its own venv
(it pins an older torch), so its figures are constants here, measured on this 2-core machine with one core /
both cores, target tokens counted the same way (pieces with EOS), decoding by its own timer; this script does
not re-measure them.

    python benchmarks/bench_peer.py --checkpoint checkpoints/translate-multi30k-joint.pt \
        --checkpoint checkpoints/translate-multi30k.pt

Decoding is timed for each --checkpoint given (a trained model: real output lengths), labelled by its output
vocabulary (joint or targets); at most one of each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_seq2seq import textgen_tokens_per_s

from textgen.results import invocation, make_result, write_result

# OpenNMT-py 3.5.1 on this machine, same model shape, 25 minutes: target tokens/s per thread
# count, and test2016 sentences/s with 2 threads by its own timer
PEER_TRAIN = {1: 2950.0, 2: 4390.0}
PEER_DECODE = {"greedy": 370.0, "beam5": 200.0}
TARGET_TRAIN, TARGET_BEAM = 1.2, 1.5  # the ratios over the peer textgen aims at
VOCABS = ("joint", "targets")


def eval_sentences_per_s(ckpt: Path, beam: int, threads: int) -> float:
    """`textgen eval` on test2016 as a user runs it, read from its results file (its own decode timer)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "textgen", "eval", str(ckpt), "--split", "test", "--beam", str(beam)]
        cmd += ["--results", str(out), "--hyp-out", str(Path(tmp) / "hyps.txt")]
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return json.loads(out.read_text())["metrics"]["sentences_per_s"]


def output_vocab(path: Path) -> str:
    from textgen.train import checkpoint

    return "targets" if "target_pieces" in checkpoint.load(path, kind="seq2seq")["vocab"] else "joint"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, action="append", default=[], help="translate-multi30k models")
    parser.add_argument("--steps", type=int, default=120, help="training updates per timing (first 20 not timed)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--out", type=Path, default=Path("results/speed-peer/bench-peer.json"))
    args = parser.parse_args()
    checkpoints = {output_vocab(path): path for path in args.checkpoint}  # checked before the long timings
    if len(checkpoints) < len(args.checkpoint):
        raise SystemExit("give at most one checkpoint with each output vocabulary (joint, targets)")
    start = time.perf_counter()
    metrics: dict = {"peer": "OpenNMT-py 3.5.1, constants of bench_peer.py (not re-measured)", "peer_train": PEER_TRAIN}
    metrics["peer_decode"] = PEER_DECODE
    cpu = torch.device("cpu")
    for threads in (1, 2):
        for precision in args.precisions.split(","):
            runs = {v: [] for v in VOCABS}
            for _ in range(args.repeats):  # interleaved, so load changes hit both variants alike
                for vocab in VOCABS:
                    sets = (f"data.target_vocab={vocab}", f"train.threads={threads}", f"train.precision={precision}")
                    runs[vocab].append(textgen_tokens_per_s("translate-multi30k", args.steps, 20, cpu, sets))
            line = []
            for vocab in VOCABS:
                tok = statistics.median(runs[vocab])
                key = f"train_{vocab}_{precision}_{threads}t"
                metrics[key] = round(tok, 1)
                metrics[f"{key}_over_peer"] = round(tok / PEER_TRAIN[threads], 3)
                line.append(f"{vocab} {tok:,.0f} ({tok / PEER_TRAIN[threads]:.2f}x)")
            print(
                f"train, {threads} thread{'s' if threads > 1 else ''}, {precision}: target tok/s "
                + " | ".join(line)
                + f" | OpenNMT-py {PEER_TRAIN[threads]:,.0f} (target >= {TARGET_TRAIN}x)"
            )
    for kind, beam in (("greedy", 1), ("beam5", 5)):
        line = []
        for vocab in checkpoints:
            rate = statistics.median(eval_sentences_per_s(checkpoints[vocab], beam, 2) for _ in range(args.repeats))
            metrics[f"eval_{kind}_{vocab}_2t"] = rate
            metrics[f"eval_{kind}_{vocab}_2t_over_peer"] = round(rate / PEER_DECODE[kind], 3)
            line.append(f"{vocab} {rate:,.0f} ({rate / PEER_DECODE[kind]:.2f}x)")
        target = f" (target >= {TARGET_BEAM}x)" if kind == "beam5" else ""
        peer = f"OpenNMT-py {PEER_DECODE[kind]:,.0f}{target}"
        print(f"eval test2016 {kind}, 2 threads: sent/s " + " | ".join(line) + f" | {peer}")
    metrics["checkpoints"] = {k: str(v) for k, v in checkpoints.items()}
    write_result(
        args.out,
        make_result(metrics, {}, time.perf_counter() - start, command=invocation("python benchmarks/bench_peer.py")),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
