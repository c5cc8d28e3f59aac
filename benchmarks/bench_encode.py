"""Where `textgen data prepare`'s encoding time goes, measured side by side on one corpus (the target: 100K
pairs/s per core): sentencepiece's own `encode` against textgen's whole split writer (read, encode, write)
with Python's cycle collector on and paused, interleaved in one process; and with --before, `textgen data
prepare` of this tree against an older commit's (run from a worktree), interleaved, by the manifests'
`encode_seconds`. The corpus is bench_data.py's synthetic one (Multi30k pairs recombined, ~1.5x longer).

    python benchmarks/bench_encode.py [--pairs 300000] [--repeats 3] [--before a186cc5]
        [--out results/data-scale/bench-encode.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_data import before_checkout, make_corpus

from textgen.config import load_recipe
from textgen.data.parallel import own_files, stream_pair_chunks
from textgen.data.prepared import gc_paused
from textgen.data.prepared_parallel import _write_split, prepare_parallel
from textgen.results import invocation, make_result, write_result

ROOT = Path(__file__).resolve().parent.parent


def in_process(spec: str, pairs: int, repeats: int) -> dict:
    """Pairs/s of sentencepiece alone and of the split writer, collector on and paused, interleaved."""
    vocabs = prepare_parallel(load_recipe("translate-multi30k", [f'data.corpus="{spec}"'])).vocabs
    chunks = list(stream_pair_chunks(*own_files(spec)["train"]))

    def tokenizer_only() -> None:
        with gc_paused():
            for sources, targets in chunks:
                vocabs.src.encode_many(sources)
                vocabs.tgt.encode_many(targets)

    def writer(paused: bool):
        def run() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                if paused:
                    with gc_paused():
                        _write_split(Path(tmp), "train", iter(chunks), vocabs)
                else:
                    _write_split(Path(tmp), "train", iter(chunks), vocabs)

        return run

    runs = {"tokenizer_only": tokenizer_only, "writer_gc_on": writer(False), "writer_gc_paused": writer(True)}
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    out = {f"{name}_pairs_per_s": round(pairs / statistics.median(s)) for name, s in seconds.items()}
    out["gc_paused_over_on"] = round(
        statistics.median(seconds["writer_gc_on"]) / statistics.median(seconds["writer_gc_paused"]), 2
    )
    out["writer_share_of_tokenizer"] = round(out["writer_gc_paused_pairs_per_s"] / out["tokenizer_only_pairs_per_s"], 2)
    return out


def prepare_encode_seconds(spec: str, tree: Path, env: dict) -> float:
    dest = Path(tempfile.mkdtemp()) / "prepared"
    cmd = [sys.executable, "-m", "textgen", "data", "prepare", spec, "--recipe", "translate-multi30k", "-o", str(dest)]
    try:
        subprocess.run(cmd, env={**env, "PYTHONPATH": str(tree)}, cwd=tree, check=True, capture_output=True)
        return json.loads((dest / "manifest.json").read_text())["encode_seconds"]
    finally:
        shutil.rmtree(dest.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "textgen-bench")
    parser.add_argument("--before", default="", help="a commit whose `data prepare` to time beside this tree's")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "data-scale" / "bench-encode.json")
    args = parser.parse_args()
    cache = args.cache.resolve()
    os.environ.setdefault("TEXTGEN_CACHE", str(cache / "textgen"))
    start = time.perf_counter()
    spec = make_corpus(args.pairs, cache / f"corpus-{args.pairs}")
    metrics = {"pairs": args.pairs, **in_process(spec, args.pairs, args.repeats)}
    if args.before:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        old, new = [], []
        for _ in range(args.repeats):
            old.append(prepare_encode_seconds(spec, before_checkout(args.before, cache), env))
            new.append(prepare_encode_seconds(spec, ROOT, env))
        pairs = args.pairs + 1014  # every split: the corpus's training pairs and Multi30k's validation set
        metrics |= {
            "before_commit": args.before,
            "prepare_before_pairs_per_s": round(pairs / statistics.median(old)),
            "prepare_now_pairs_per_s": round(pairs / statistics.median(new)),
            "prepare_now_over_before": round(statistics.median(old) / statistics.median(new), 2),
        }
    print(json.dumps(metrics, indent=1))
    result = make_result(metrics, {}, time.perf_counter() - start, invocation("python benchmarks/bench_encode.py"))
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    write_result(args.out, result)


if __name__ == "__main__":
    main()
