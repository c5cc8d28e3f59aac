"""MBR decoding speed next to beam 5: the same validation sources, one run, sentences/s of both and their ratio.

MBR's time is split into sampling N candidates per source (batched: batch_size sources x N rows a step) and
selection (N(N-1) utility calls per source at most, fewer when candidates repeat). Corpus BLEU of both
outputs against the references is reported too (sacrebleu via textgen.metrics).

    python benchmarks/bench_mbr.py [--checkpoint checkpoints/translate-multi30k.pt] [--sentences 1000] [--n 32]
        [--sampling epsilon] [--utility bleu] [--device cpu] [--out results/speed/bench-mbr.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from textgen.config import MbrConfig
from textgen.data.parallel import load_parallel
from textgen.decode import settings
from textgen.decode.driver import decode_ids
from textgen.decode.mbr import SAMPLINGS, UTILITIES, sample_candidates, select
from textgen.device import resolve_device, synchronize
from textgen.metrics import score
from textgen.results import invocation, make_result, write_result
from textgen.tasks.seq2seq import encode_sources, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/translate-multi30k.pt"))
    parser.add_argument("--data", help="corpus name or path [default: the checkpoint's training corpus]")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--n", type=int, default=32, help="MBR candidates per source")
    parser.add_argument("--sampling", default=MbrConfig.sampling, choices=SAMPLINGS)
    parser.add_argument("--utility", default=MbrConfig.utility, choices=list(UTILITIES))
    parser.add_argument("--epsilon", type=float, default=MbrConfig.epsilon)
    parser.add_argument("--top-p", type=float, default=MbrConfig.top_p)
    parser.add_argument("--seed", type=int, default=MbrConfig.seed)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, help="sources decoded together [default: the recipe's]")
    parser.add_argument("--precision", help="fp32, bf16, fp16 [default: the recipe's]")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--out", type=Path, default=Path("results/speed/bench-mbr.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    device = resolve_device(args.device)
    model, vocabs, recipe, _ = load_model(args.checkpoint, device)
    corpus = load_parallel(args.data or recipe.data.corpus)
    part = corpus.splits[args.split]
    sources = encode_sources(vocabs, part.sources[: args.sentences], recipe.data.max_source_tokens)
    refs = [part.targets[: len(sources)]]
    cfg = settings.resolve(
        recipe.decode,
        device,
        seed=args.seed,
        mbr=args.n,
        nbest=1,
        batch_size=args.batch_size,
        precision=args.precision,
        mbr_sampling=args.sampling,
        mbr_utility=args.utility,
        mbr_epsilon=args.epsilon,
        mbr_top_p=args.top_p,
    )

    def clock() -> float:
        synchronize(device)
        return time.perf_counter()

    decode_ids(model, sources[: cfg.batch_size], cfg, beam=args.beam)  # warm-up: first-batch kernel setup
    sample_candidates(model, vocabs.tgt.decode, sources[:8], cfg)
    t0 = clock()
    beam_ids = decode_ids(model, sources, cfg, beam=args.beam)
    beam_out = [vocabs.tgt.decode(toks[0]) if toks else "" for toks, _ in beam_ids]
    t1 = clock()
    candidates = sample_candidates(model, vocabs.tgt.decode, sources, cfg)
    t2 = clock()
    chosen = select(candidates, args.utility)
    t3 = clock()
    beam_s, sample_s, select_s = t1 - t0, t2 - t1, t3 - t2
    mbr_out = [c.text for c in chosen]
    n = len(sources)
    beam_bleu = score(["bleu4"], beam_out, refs)[0]["bleu4"]
    mbr_bleu, signatures = score(["bleu4"], mbr_out, refs)
    distinct = sum(len(set(c)) for c in candidates) / max(1, n)
    calls = sum(m * (m - 1) + sum(c.count(x) > 1 for x in set(c)) for c in candidates for m in [len(set(c))])
    metrics = {
        "device": str(device),
        "checkpoint": str(args.checkpoint),
        "split": args.split,
        "sentences": n,
        "batch_size": cfg.batch_size,
        "precision": cfg.precision,
        "beam": args.beam,
        "mbr_n": args.n,
        "mbr_sampling": args.sampling,
        "mbr_utility": args.utility,
        "mbr_seed": args.seed,
        **({"mbr_epsilon": args.epsilon} if args.sampling == "epsilon" else {}),
        **({"mbr_top_p": args.top_p} if args.sampling == "top_p" else {}),
        "mbr_max_rows_per_batch": cfg.batch_size * args.n,
        f"beam{args.beam}_seconds": round(beam_s, 3),
        f"beam{args.beam}_sentences_per_s": round(n / beam_s, 2),
        "mbr_sampling_seconds": round(sample_s, 3),
        "mbr_selection_seconds": round(select_s, 3),
        "mbr_seconds": round(sample_s + select_s, 3),
        "mbr_sentences_per_s": round(n / (sample_s + select_s), 2),
        "mbr_over_beam_time": round((sample_s + select_s) / beam_s, 2),
        "mbr_distinct_candidates_mean": round(distinct, 2),
        "mbr_utility_calls": calls,
        "mbr_utility_calls_without_dedup": n * args.n * (args.n - 1),
        f"beam{args.beam}_bleu4": beam_bleu,
        "mbr_bleu4": mbr_bleu["bleu4"],
    }
    print(
        f"{n} {args.split} sentences on {device}: beam {args.beam} {n / beam_s:,.1f} sent/s ({beam_s:.2f} s) | "
        f"MBR N={args.n} {args.sampling}/{args.utility} {n / (sample_s + select_s):,.1f} sent/s "
        f"({sample_s:.2f} s sampling {n * args.n:,} candidates, {select_s:.2f} s selecting) | "
        f"MBR takes {(sample_s + select_s) / beam_s:.1f}x beam's time"
    )
    print(
        f"distinct candidates per source {distinct:.1f} of {args.n}; utility calls {calls:,} "
        f"(without deduplication {n * args.n * (args.n - 1):,}); "
        f"corpus BLEU beam {beam_bleu:.2f}, MBR {mbr_bleu['bleu4']:.2f}"
    )
    write_result(
        args.out,
        make_result(
            metrics,
            corpus.sha256,
            time.perf_counter() - start,
            command=invocation("python benchmarks/bench_mbr.py"),
            signatures=signatures,
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
