"""How training's start-up cost and memory grow with the corpus: prepared (memory-mapped) data against the
in-memory loader it replaced, on synthetic parallel corpora of growing size.

Each corpus is Multi30k's training pairs recombined and perturbed (made here, under --cache, never committed):
a pair, half the time followed by the first half of another pair, with two neighbouring words swapped on each
side. For every size it records: `textgen data prepare` time and folder size; then for `textgen train
--recipe translate-multi30k` on that corpus (50 updates, loss-only validation at the end), on the prepared
folder (after) and with the loader of --before (a commit from before prepared data, run from a worktree):
peak RSS, seconds from process start to the first update, and training target tokens/s over updates 10-50.
(benchmarks/bench_encode.py takes the encoding rate apart.)
The before run is stopped once its RSS passes --rss-cap (recorded as such). The LM rows do the same for the
`shakespeare` char LSTM on synthetic texts of up to 1B characters (Tiny Shakespeare's lines drawn at random,
two words swapped in each): prepare time and size, then peak RSS, first update and chars/s on the folder.

    python benchmarks/bench_data.py [--sizes 30000 300000 3000000 10000000] [--cache ~/.cache/textgen-bench]
        [--before 45aab02] [--lm-chars 10000000 100000000 1000000000] [--out results/data-scale/bench-data.json]
        [--plot results/data-scale/bench-data.png]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from textgen.data.parallel import load_parallel
from textgen.results import invocation, make_result, write_result

ROOT = Path(__file__).resolve().parent.parent
STEPS = 50
LM_HOLDOUT = 200_000  # characters of validation + test in the LM rows


def perturb(words: list[str], rng: random.Random) -> list[str]:
    if len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return words


def make_corpus(n: int, folder: Path, seed: int = 0) -> str:
    """n synthetic training pairs plus Multi30k's validation set; returns the corpus spec for a recipe."""
    corpus = load_parallel("multi30k").splits
    spec = f"{folder}/train.de,{folder}/train.en;{folder}/valid.de,{folder}/valid.en"
    if (folder / "done").is_file():
        return spec
    folder.mkdir(parents=True, exist_ok=True)
    train = list(zip(corpus["train"].sources, corpus["train"].targets))
    rng = random.Random(seed)
    with open(folder / "train.de", "w") as src, open(folder / "train.en", "w") as tgt:
        for _ in range(n):
            s, t = rng.choice(train)
            s, t = s.split(), t.split()
            if rng.random() < 0.5:
                s2, t2 = rng.choice(train)
                s, t = s + s2.split()[: len(s2.split()) // 2], t + t2.split()[: len(t2.split()) // 2]
            src.write(" ".join(perturb(s, rng)) + "\n")
            tgt.write(" ".join(perturb(t, rng)) + "\n")
    for name, lines in (("valid.de", corpus["valid"].sources), ("valid.en", corpus["valid"].targets)):
        (folder / name).write_text("".join(line + "\n" for line in lines))
    (folder / "done").write_text("")
    return spec


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def peak_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def make_text(chars: int, folder: Path, seed: int = 0) -> Path:
    """About `chars` characters of Tiny Shakespeare's lines, drawn at random with two neighbouring words swapped
    in each (the LM row of the curve); its last LM_HOLDOUT characters are validation and test."""
    path = folder / "text.txt"
    if (folder / "done").is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    from textgen.data.registry import fetch

    source = next(iter(fetch("tinyshakespeare").values())).read_text(encoding="utf-8").splitlines()
    rng, written = random.Random(seed), 0
    with open(path, "w", encoding="utf-8") as out:
        while written < chars:
            block = "".join(" ".join(perturb(rng.choice(source).split(), rng)) + "\n" for _ in range(1 << 16))
            out.write(block)
            written += len(block)
    (folder / "done").write_text("")
    return path


def plot_curve(rows: list[dict], path: Path) -> None:
    """Seconds to the first update and peak RSS against corpus size, after (prepared) and before."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, style in (("after", "prepared (memory-mapped)", "o-"), ("before", "in-memory loader", "s--")):
        points = [(r["pairs"], r[key]) for r in rows if key in r and "failed" not in r[key]]
        if not points:
            continue
        sizes = [n for n, _ in points]
        axes[0].plot(sizes, [m["seconds_to_first_update"] for _, m in points], style, label=label)
        axes[1].plot(sizes, [m["peak_rss_gib"] for _, m in points], style, label=label)
    for ax, ylabel in zip(axes, ("seconds to the first update (second run)", "peak RSS, GiB (50 updates)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training pairs")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("textgen train --recipe translate-multi30k on synthetic corpora (benchmarks/bench_data.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def train_run(
    spec: str, run_dir: Path, env: dict, rss_cap: int, extra: list[str], recipe: str = "translate-multi30k"
) -> dict:
    """One `textgen train` of STEPS updates; polls its peak RSS and the first row of its metrics.csv."""
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "textgen", "train", "--recipe", recipe, "--set",
           f'data.corpus="{spec}"', "--set", f"train.max_steps={STEPS}", "--set", "train.log_every=1", "--set",
           "train.max_minutes=0", "--set", "train.valid_metric=loss", "--set", "train.threads=1",
           "-o", str(run_dir / "model.pt"), "--run-dir", str(run_dir), *extra]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics, first, rss, stopped = run_dir / "metrics.csv", None, 0, ""
    while proc.poll() is None:
        rss = max(rss, peak_rss(proc.pid))
        if first is None and metrics.is_file() and len(metrics.read_text().splitlines()) > 1:
            first = time.perf_counter() - start
        if rss > rss_cap:
            proc.kill()
            stopped = f"stopped: RSS passed {rss_cap / 2**30:.0f} GiB"
        time.sleep(0.05)
    err = proc.stderr.read()
    if stopped or proc.returncode != 0:
        return {"peak_rss_gib": round(rss / 2**30, 3), "failed": stopped or err.strip().splitlines()[-1][:300]}
    rows = list(csv.DictReader(metrics.open()))
    a, b = (next(r for r in rows if int(r["step"]) == s) for s in (10, STEPS))
    tps = (float(b["tokens"]) - float(a["tokens"])) / (float(b["seconds"]) - float(a["seconds"]))
    return {
        "peak_rss_gib": round(rss / 2**30, 3),
        "seconds_to_first_update": round(first, 2) if first else None,
        "seconds_total": round(time.perf_counter() - start, 2),
        "train_tokens_per_s": round(tps, 1),
    }


def before_checkout(commit: str, cache: Path) -> Path:
    tree = cache / f"textgen-{commit}"
    if not tree.is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                       capture_output=True)  # fmt: skip
    return tree


def lm_row(chars: int, cache: Path, env: dict, cap: int) -> dict:
    """The `shakespeare` char LSTM on a synthetic text of `chars` characters: prepare, then train on the folder.
    The held-out tail is fixed at LM_HOLDOUT characters (a 10% tail of 1B characters would make the final
    validation take longer than the benchmark)."""
    text = make_text(chars, cache / f"text-{chars}")
    size = text.stat().st_size
    holdout = f"data.holdout={LM_HOLDOUT / size:.3g}"
    prep = cache / f"prepared-text-{chars}"
    shutil.rmtree(prep, ignore_errors=True)
    t0 = time.perf_counter()
    prepare = [sys.executable, "-m", "textgen", "data", "prepare", str(text), "--recipe", "shakespeare"]
    done = subprocess.run([*prepare, "--set", holdout, "-o", str(prep)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    row = {"chars": chars, "text_bytes": size, "prepare_seconds": round(time.perf_counter() - t0, 2)}
    row["prepared_bytes"] = folder_bytes(prep)
    extra = ["--set", holdout, "--prepared", str(prep)]
    row["after"] = train_run(str(text), cache / "run-lm", env, cap, extra, recipe="shakespeare")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[30_000, 300_000, 3_000_000, 10_000_000])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "textgen-bench")
    parser.add_argument("--before", default="45aab02", help="a commit with the in-memory loader ('' to skip)")
    parser.add_argument("--before-max", type=int, default=3_000_000, help="largest size to run the old loader on")
    parser.add_argument("--rss-cap", type=float, default=16.0, help="GiB at which a run is stopped")
    parser.add_argument("--lm-chars", type=int, nargs="*", default=[10_000_000, 100_000_000, 1_000_000_000])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "data-scale" / "bench-data.json")
    plot = ROOT / "results" / "data-scale" / "bench-data.png"
    parser.add_argument("--plot", type=Path, default=plot, help="'' to skip")
    args = parser.parse_args()
    cache, cap = args.cache.resolve(), int(args.rss_cap * 2**30)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TEXTGEN_CACHE": str(cache / "textgen")}
    rows, lm_rows, start = [], [], time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]

    def save(complete: bool) -> None:  # after every row, so an interrupted run keeps what it measured
        result = make_result({"rows": rows, "lm_rows": lm_rows}, {}, time.perf_counter() - start)
        result["command"] = invocation("python benchmarks/bench_data.py")
        result["complete"] = complete
        result["load_average_at_start"] = load
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        write_result(args.out, result)
        if rows and str(args.plot) not in ("", "."):
            plot_curve(rows, args.plot)

    for n in args.sizes:
        spec = make_corpus(n, cache / f"corpus-{n}")
        row = {
            "pairs": n,
            "text_bytes": sum((cache / f"corpus-{n}" / f).stat().st_size for f in ("train.de", "train.en")),
        }
        prep = cache / f"prepared-{n}"
        shutil.rmtree(prep, ignore_errors=True)
        t0 = time.perf_counter()
        prepare = [sys.executable, "-m", "textgen", "data", "prepare", spec, "--recipe", "translate-multi30k"]
        done = subprocess.run([*prepare, "-o", str(prep)], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        row["prepare_seconds"] = round(time.perf_counter() - t0, 2)
        row["prepared_bytes"] = folder_bytes(prep)
        manifest = json.loads((prep / "manifest.json").read_text())
        row["encode_seconds"] = manifest["encode_seconds"]  # one core: read, tokenize, write every split
        row["encode_pairs_per_s"] = round(sum(s["pairs"] for s in manifest["splits"].values()) / row["encode_seconds"])
        row["tokenizer_training"] = manifest["tokenizer_training"]
        row["after"] = train_run(spec, cache / "run-after", env, cap, ["--prepared", str(prep)])
        if args.before and n <= args.before_max:
            old = {**env, "PYTHONPATH": str(before_checkout(args.before, cache))}
            row["before"] = train_run(spec, cache / "run-before", old, cap, [])
        print(row, flush=True)
        rows.append(row)
        save(False)
    for chars in args.lm_chars:
        lm_rows.append(lm_row(chars, cache, env, cap))
        print(lm_rows[-1], flush=True)
        save(False)
    save(True)


if __name__ == "__main__":
    main()
