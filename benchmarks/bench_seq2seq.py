"""Seq2seq speed: teacher-forced training tokens/s, greedy and beam-5 sentences/s, batched vs per-sentence beam.

Uses the translate-multi30k model shape on Multi30k sources. With --checkpoint a trained model is
timed (realistic output lengths); without, a random model, whose outputs run to the length limit.

    python benchmarks/bench_seq2seq.py [--checkpoint checkpoints/translate-multi30k.pt] [--sentences 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from textgen.config import load_recipe  # noqa: E402
from textgen.results import invocation, make_result, write_result  # noqa: E402
from textgen.seq2seq import Seq2SeqTask, decode_ids, encode_sources, load_model  # noqa: E402


def train_tokens_per_s(task: Seq2SeqTask, steps: int) -> float:
    """The trainer's update on real batches: forward, backward, clip, Adam."""
    model = task.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = 0
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps excluded
            tokens, start = 0, time.perf_counter()
        out = task.loss(step)
        opt.zero_grad()
        (out.loss_sum / out.ntokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        tokens += out.ntokens
    return tokens / (time.perf_counter() - start)


def sentences_per_s(model, sources, cfg, beam: int, batch_size: int) -> tuple[float, list]:
    start = time.perf_counter()
    out = decode_ids(model, sources, dataclasses.replace(cfg, batch_size=batch_size), beam=beam)
    return len(sources) / (time.perf_counter() - start), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="translate-multi30k")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/bench-seq2seq.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    recipe = load_recipe(args.recipe)
    task = Seq2SeqTask(recipe)
    metrics = {"train_target_tokens_per_s": round(train_tokens_per_s(task, args.train_steps), 1)}
    print(f"teacher-forced training: {metrics['train_target_tokens_per_s']:,.0f} target tokens/s")
    if args.checkpoint:
        model, vocabs, recipe, _ = load_model(args.checkpoint)
    else:
        model, vocabs = task.model.eval(), task.vocabs
    sources = encode_sources(vocabs, task.valid.sources[: args.sentences], recipe.data.max_source_tokens)
    cfg = recipe.decode
    greedy, _ = sentences_per_s(model, sources, cfg, 1, cfg.batch_size)
    batched, out_batched = sentences_per_s(model, sources, cfg, 5, cfg.batch_size)
    few = sources[: max(10, args.sentences // 10)]  # per-sentence beam is slow: time a tenth
    single, out_single = sentences_per_s(model, few, cfg, 5, 1)
    same = all(a[0] == b[0] for a, b in zip(out_single, out_batched[: len(few)]))
    metrics.update({"greedy_sentences_per_s": round(greedy, 1), "beam5_batched_sentences_per_s": round(batched, 1),
                    "beam5_single_sentences_per_s": round(single, 1),
                    "beam5_batched_over_single": round(batched / single, 2),
                    "batched_equals_single": same, "checkpoint": str(args.checkpoint or "random init")})
    print(f"greedy {greedy:,.1f} sent/s | beam 5 batched {batched:,.1f} sent/s | beam 5 one at a time "
          f"{single:,.1f} sent/s | ratio {batched / single:.1f}x (target >= 10x) | same hypotheses: {same}")
    shas = task.sha256
    write_result(args.out, make_result(metrics, shas, time.perf_counter() - start,
                                       command=invocation("python benchmarks/bench_seq2seq.py")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
