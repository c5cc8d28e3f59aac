"""How much a reordering of a model's own beam can move its score: beam search's best output against the best of
its n best by the sentence metric (an oracle no reranker and no ranking objective of those candidates can beat).

A ranking objective (objective.rank) teaches the model to put the candidate with the best reward first; the
oracle is where that stops. Also reports how often the oracle's choice differs from beam search's and how many
sources have no candidate with any reward (nothing to rank).

    python experiments/finetune/nbest_oracle.py CKPT --split test --metric rouge2 --out OUT.json
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from textgen.data.parallel import load_parallel
from textgen.decode.driver import decode_ids
from textgen.metrics import score, sentence_bleu, sentence_rouge
from textgen.results import invocation, make_result, write_result
from textgen.tasks.seq2seq import encode_sources, load_model

SENTENCE = {"rouge2": lambda h, r: sentence_rouge(h, r, "rouge2"), "bleu4": sentence_bleu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--metric", choices=list(SENTENCE), default="rouge2")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    torch.manual_seed(1)
    model, vocabs, recipe, _ = load_model(args.checkpoint)
    corpus = load_parallel(recipe.data.corpus)
    split = corpus.splits[args.split]
    sources = encode_sources(vocabs, split.sources, recipe.data.max_source_tokens)
    cfg = dataclasses.replace(recipe.decode, beam=args.beam, nbest=args.beam)
    nbest = [[vocabs.tgt.decode(toks) for toks in candidates] for candidates, _ in decode_ids(model, sources, cfg)]
    rewards = [[SENTENCE[args.metric](h, ref) for h in hyps] for hyps, ref in zip(nbest, split.targets)]
    chosen = [max(range(len(r)), key=r.__getitem__) for r in rewards]  # the first best on ties
    top = score([args.metric], [hyps[0] for hyps in nbest], [split.targets])[0][args.metric]
    oracle = score([args.metric], [hyps[i] for hyps, i in zip(nbest, chosen)], [split.targets])[0][args.metric]
    metrics = {
        "sentences": len(sources),
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
            corpus.sha256,
            time.perf_counter() - start,
            command=invocation("python experiments/finetune/nbest_oracle.py"),
            checkpoint=str(args.checkpoint),
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
