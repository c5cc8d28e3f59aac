"""Sequence-level rewards of a model's samples and of its greedy output, on the validation set.

Samples one full output (s = 0, temperature 1, as REINFORCE does) per source and reports, per reward,
the mean and the fraction of outputs with reward > 0 (how sparse the reward is: ROUGE-2 on short
subjects), the same for the greedy output, and the mean log-probability per sampled token (how peaked
the policy is: RL fine-tuning can raise the sampled reward by sharpening the distribution while the
greedy output, what decoding uses, barely moves).

    python experiments/objectives-one-budget/sample_rewards.py CKPT --out OUT-valid-samples.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from textgen.data.parallel import load_parallel
from textgen.decode.driver import decode_ids
from textgen.metrics import REWARDS
from textgen.results import invocation, make_result, write_result
from textgen.tasks.seq2seq import encode_sources, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    model, vocabs, recipe, _ = load_model(args.checkpoint)
    corpus = load_parallel(recipe.data.corpus)
    split = corpus.splits[args.split]
    sources = encode_sources(vocabs, split.sources, recipe.data.max_source_tokens)
    outputs = {
        "sample": decode_ids(model, sources, recipe.decode, sample=True, temperature=1.0, seed=args.seed),
        "greedy": decode_ids(model, sources, recipe.decode, beam=1),
    }
    metrics: dict = {"sentences": len(sources)}
    for how, results in outputs.items():
        hyps = [vocabs.tgt.decode(toks[0]) for toks, _ in results]
        for name, reward in REWARDS.items():
            values = [reward(h, r) for h, r in zip(hyps, split.targets)]
            metrics[f"{how}_{name}_mean"] = round(statistics.mean(values), 4)
            metrics[f"{how}_{name}_nonzero"] = round(sum(v > 0 for v in values) / len(values), 4)
        metrics[f"{how}_mean_words"] = round(statistics.mean(len(h.split()) for h in hyps), 2)
        tokens = sum(len(toks[0]) + 1 for toks, _ in results)  # + EOS
        metrics[f"{how}_logprob_per_token"] = round(sum(scores[0] for _, scores in results) / tokens, 4)
    metrics["reference_mean_words"] = round(statistics.mean(len(r.split()) for r in split.targets), 2)
    for name in REWARDS:
        print(
            f"{name:>10}: samples mean {metrics[f'sample_{name}_mean']:.3f}, non-zero "
            f"{100 * metrics[f'sample_{name}_nonzero']:.1f}% | greedy mean {metrics[f'greedy_{name}_mean']:.3f}, "
            f"non-zero {100 * metrics[f'greedy_{name}_nonzero']:.1f}%"
        )
    write_result(
        args.out,
        make_result(
            metrics,
            corpus.sha256,
            time.perf_counter() - start,
            command=invocation("python experiments/sample_rewards.py"),
            checkpoint=str(args.checkpoint),
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
