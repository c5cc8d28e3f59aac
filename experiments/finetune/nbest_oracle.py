"""How much a reordering of a model's own beam can move its ROUGE: beam search's best output against the best of
its n best by sentence ROUGE (corpus ROUGE is the mean of sentence scores, so no reranker and no ranking objective
of those candidates can beat it; corpus BLEU is not, which is why BLEU is not offered).

A ranking objective (objective.rank) teaches the model to put the candidate with the best reward first; the
oracle is where that stops. Also reports how often the oracle's choice differs from beam search's and how many
sources have no candidate with any reward (nothing to rank).

    python experiments/finetune/nbest_oracle.py CKPT --split test --metric rouge2 --out OUT.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from textgen.evaluate import open_split
from textgen.metrics import best_reference_f1
from textgen.results import invocation, make_result, write_result

KINDS = ("rouge1", "rouge2", "rougeL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--metric", choices=KINDS, default="rouge2")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    # the split decoded and its references normalised as `textgen eval --beam B` does, keeping the n best
    s = open_split([args.checkpoint], None, args.split, torch.device("cpu"), nbest=args.beam, beam=args.beam)
    nbest = [[text for text, _ in d.nbest] or [""] for d in s.decode()]
    references = s.references()[0]
    rewards = [[best_reference_f1(h, [ref], (args.metric,))[args.metric] for h in hyps]
               for hyps, ref in zip(nbest, references)]  # fmt: skip
    chosen = [max(range(len(r)), key=r.__getitem__) for r in rewards]  # the first best on ties
    top = round(100 * sum(r[0] for r in rewards) / len(rewards), 2)  # corpus ROUGE: the mean sentence F1 x100
    oracle = round(100 * sum(r[i] for r, i in zip(rewards, chosen)) / len(rewards), 2)
    metrics = {
        "sentences": len(nbest),
        "beam": args.beam,
        "candidates_per_source": round(sum(map(len, nbest)) / len(nbest), 2),
        f"top_{args.metric}": top,
        f"oracle_{args.metric}": oracle,
        "oracle_gain": round(oracle - top, 2),
        "oracle_differs": round(sum(i > 0 for i in chosen) / len(chosen), 4),
        "no_candidate_rewarded": round(sum(max(r) == 0 for r in rewards) / len(rewards), 4),
    }
    print(", ".join(f"{k} {v}" for k, v in metrics.items()))
    write_result(
        args.out,
        make_result(
            metrics,
            s.sha256,
            time.perf_counter() - start,
            command=invocation("python experiments/finetune/nbest_oracle.py"),
            checkpoint=str(args.checkpoint),
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
