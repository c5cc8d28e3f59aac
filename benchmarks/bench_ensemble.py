"""What an ensemble and n-best reranking cost per sentence: beam 5 with the first 1, 2, ... N checkpoints as one
ensemble, and the N-model ensemble's n best reranked by a `textgen rerank` weights file tuned for it, on the same
validation sources in one run; sentences/s and the ratio to one model's beam 5.

An ensemble of N runs N decoders a step, so its time should grow about N-fold; reranking decodes a wider beam for
its n best and then scores every candidate with the reverse model (one teacher-forced pass per batch) and the
language model; both parts are timed apart, each after a warm-up on a few sources. Corpus BLEU of each output
is reported too (sacrebleu).

    python benchmarks/bench_ensemble.py A.pt B.pt ... [--rerank WEIGHTS.json] [--sentences 500] [--threads N]
        [--out results/speed/bench-ensemble.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from textgen.api import load
from textgen.data.parallel import load_parallel
from textgen.metrics import score
from textgen.rerank import FEATURES, pick
from textgen.rerank import load as load_reranker
from textgen.results import invocation, make_result, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="seq2seq checkpoints with the same vocabularies")
    parser.add_argument("--rerank", type=Path, help="a weights file of `textgen rerank` for the whole ensemble")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads [default: torch's]")
    parser.add_argument("--out", type=Path, default=Path("results/speed/bench-ensemble.json"))
    args = parser.parse_args()
    if args.rerank:  # checked before the long timings: weights tuned for other models would time a wrong reranking
        tuned_for = json.loads(args.rerank.read_text()).get("checkpoints")
        if tuned_for != [str(p.resolve()) for p in args.checkpoints]:
            print(f"reranking not timed: {args.rerank} was tuned for {tuned_for}, not these checkpoints")
            args.rerank = None
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    first = load(args.checkpoints[0], "cpu", kind="seq2seq")
    corpus = load_parallel(first.recipe.data.corpus)
    part = corpus.splits[args.split]
    sources, refs = part.sources[: args.sentences], [part.targets[: args.sentences]]
    n = len(sources)
    rows, signatures = [], None
    for k in range(1, len(args.checkpoints) + 1):
        model = first if k == 1 else load(args.checkpoints[:k], "cpu", kind="seq2seq")
        model.translate(sources[:20], beam=args.beam)  # warm-up: first-batch kernel setup
        t0 = time.perf_counter()
        out = model.translate(sources, beam=args.beam)
        seconds = time.perf_counter() - t0
        bleu, signatures = score(["bleu4"], out, refs)
        rows.append({"members": k, "seconds": round(seconds, 3), "sentences_per_s": round(n / seconds, 2)})
        rows[-1] |= {"over_one_model_time": round(seconds / rows[0]["seconds"], 2), "bleu4": bleu["bleu4"]}
        print(
            f"ensemble of {k}: beam {args.beam} {n / seconds:,.1f} sent/s, {rows[-1]['over_one_model_time']}x "
            f"one model's time, BLEU {bleu['bleu4']:.2f}"
        )
    metrics = {"split": args.split, "sentences": n, "beam": args.beam, "threads": torch.get_num_threads()}
    metrics["ensembles"] = rows
    metrics["checkpoints"] = [str(p) for p in args.checkpoints]
    if args.rerank:
        reranker = load_reranker(args.rerank, "cpu")
        reranker.features(sources[:5], model.translate(sources[:5], **reranker.decode_settings(None, None)))  # warm-up
        t0 = time.perf_counter()
        nbests = model.translate(sources, **reranker.decode_settings(None, None))
        t1 = time.perf_counter()
        features = reranker.features(sources, nbests)  # the reverse model's and the LM's scores of each candidate
        out = pick(nbests, features, [reranker.weights[f] for f in FEATURES])
        t2 = time.perf_counter()
        bleu, _ = score(["bleu4"], out, refs)
        metrics["rerank"] = {
            "weights_file": str(args.rerank),
            "nbest": reranker.nbest,
            "candidates": sum(map(len, nbests)),
            "nbest_decode_seconds": round(t1 - t0, 3),
            "rescoring_seconds": round(t2 - t1, 3),
            "sentences_per_s": round(n / (t2 - t0), 2),
            "over_same_model_beam_time": round((t2 - t0) / rows[-1]["seconds"], 2),
            "bleu4": bleu["bleu4"],
        }
        print(
            f"reranked {reranker.nbest} best of the ensemble of {len(rows)}: {n / (t2 - t0):,.1f} sent/s "
            f"({t1 - t0:.1f} s n-best search, {t2 - t1:.1f} s scoring the candidates with the reverse model and LM), "
            f"{(t2 - t0) / rows[-1]['seconds']:.1f}x its beam {args.beam}'s time, BLEU {bleu['bleu4']:.2f}"
        )
    write_result(
        args.out,
        make_result(
            metrics,
            corpus.sha256,
            time.perf_counter() - start,
            command=invocation("python benchmarks/bench_ensemble.py"),
            signatures=signatures,
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
