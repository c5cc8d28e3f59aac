"""The paper-regime table (experiments/paper-regime/run.sh) from results/paper-regime/.

One row per objective: test2016 BLEU (lowercased, tokenized Multi30k-tok) with greedy search and beam 5 as
mean ± sample std over the seeds that finished, best validation BLEU (greedy, first 500 sentences, the
checkpoint-selection metric), updates and training seconds per run; then the same for the `continue` runs
(round R: 6 more epochs of XENT or of MIXER's stages from XENT's model after 6 + 6R epochs; a round run at a set
learning rate, `LR=X`, is a table of its own), one table per round, with MIXER − XENT on each seed both finished
(the same start and batches) and the paired-bootstrap p of `run.sh compare`. Writes paper-table.{json,csv,md}
and paper-differences.json into results/paper-regime/.

    experiments/paper-regime/run.sh table
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from tables import RESULTS, checked_pair, fmt, summarise

STUDY = RESULTS / "paper-regime"
START = r"continued(?P<round>[2-9]?)(?:-lr(?P<lr>[0-9.]+))?"  # round R (blank: 1), at a set lr if -lrX
RUN = re.compile(rf"(?P<start>paper|{START})-(?P<objective>xent|dad|e2e|mixer)-s(?P<seed>\d+)-train\.json")
ORDER = ["xent", "dad", "e2e", "mixer"]
DIFFERENCES = ("test_bleu4_beam1", "test_bleu4_beam5", "best_valid_bleu4")  # MIXER − XENT per seed, per round
HEADER = "| objective | seeds | test BLEU greedy | test BLEU beam 5 | best valid BLEU | updates | train s / run |"


def collect(folder: Path) -> dict[tuple[str, str], list[dict]]:
    """Finished runs by (start, objective): start is "paper" (from scratch) or "continued[R][-lrX]" (round R)."""
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*-train.json")):
        match = RUN.fullmatch(path.name)
        stem = path.name.removesuffix("-train.json")
        tests = {b: folder / f"{stem}-test-beam{b}.json" for b in (1, 5)}
        if not match or not all(p.exists() for p in tests.values()):
            continue  # another experiment's file, or a run still training or decoding
        train = json.loads(path.read_text())["metrics"]
        row = {"start": match["start"], "objective": match["objective"], "seed": int(match["seed"])}
        row["steps"] = train["steps"]
        row["train_seconds"] = train["train_seconds"]
        row["best_valid_bleu4"] = train["best_valid_bleu4"]
        for b, test in tests.items():
            row[f"test_bleu4_beam{b}"] = json.loads(test.read_text())["metrics"]["bleu4"]
        runs[row["start"], row["objective"]].append(row)
    return {key: sorted(rs, key=lambda r: r["seed"]) for key, rs in runs.items()}


def round_of(start: str) -> int:
    """The continuation round of a run-name prefix: "continued" is round 1, "continued2" (or "continued2-lr0.05",
    round 2 at a set learning rate) round 2."""
    return int(re.fullmatch(START, start)["round"] or 1)


def table(runs: dict[tuple[str, str], list[dict]], start: str) -> list[str]:
    """One markdown table of the runs with this start; `updates` counts the run's own (a round's 6 epochs)."""
    lines = [HEADER, "|---|---|---|---|---|---|---|"]
    for objective in ORDER:
        rs = runs.get((start, objective), [])
        if not rs:
            continue
        col = lambda key: fmt(summarise([r[key] for r in rs]))  # noqa: E731
        seconds = statistics.mean(r["train_seconds"] for r in rs)
        lines.append(
            f"| {objective.upper()} | {', '.join(str(r['seed']) for r in rs)} | {col('test_bleu4_beam1')} "
            f"| {col('test_bleu4_beam5')} | {col('best_valid_bleu4')} | {rs[0]['steps']:,} | {seconds:,.0f} |"
        )
    return lines


def differences(runs: dict[tuple[str, str], list[dict]], start: str, folder: Path) -> dict:
    """MIXER − XENT per seed in one round, on the seeds where both finished: the round tables' means can mix
    seeds (a MIXER run still training), this cannot. p is the paired bootstrap's, None until compared."""
    xent = {r["seed"]: r for r in runs.get((start, "xent"), [])}
    mixer = {r["seed"]: r for r in runs.get((start, "mixer"), [])}
    per_seed = []
    for seed in sorted(xent.keys() & mixer.keys()):
        row: dict = {"seed": seed}
        for key in DIFFERENCES:
            row[key] = round(mixer[seed][key] - xent[seed][key], 2)
        for b in (1, 5):
            row[f"p_beam{b}"] = None
            sig = folder / f"{start}-mixer-s{seed}-vs-xent-beam{b}-significance.json"
            if sig.exists():
                score = f"test_bleu4_beam{b}"
                _, row[f"p_beam{b}"] = checked_pair(
                    sig, f"{start}-xent-s{seed}-test-beam{b}", f"{start}-mixer-s{seed}-test-beam{b}.txt",
                    xent[seed][score], mixer[seed][score], "bleu4", "experiments/paper-regime/run.sh compare",
                )  # fmt: skip
        per_seed.append(row)
    mean = {key: summarise([r[key] for r in per_seed]) for key in DIFFERENCES} if per_seed else {}
    return {"start": start, "round": round_of(start), "per_seed": per_seed, "mean": mean}


def difference_table(diff: dict) -> list[str]:
    """MIXER − XENT rows for one round: one per seed, then the mean over seeds."""
    p = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        "| MIXER − XENT | test greedy (p) | test beam 5 (p) | best valid |",
        "|---|---|---|---|",
    ]
    for r in diff["per_seed"]:
        lines.append(
            f"| seed {r['seed']} | {r['test_bleu4_beam1']:+.2f} ({p(r['p_beam1'])}) "
            f"| {r['test_bleu4_beam5']:+.2f} ({p(r['p_beam5'])}) | {r['best_valid_bleu4']:+.2f} |"
        )
    if len(diff["per_seed"]) > 1:
        lines.append("| mean over seeds | " + " | ".join(fmt(diff["mean"][k], signed=True) for k in DIFFERENCES) + " |")
    return lines


def main() -> None:
    folder = STUDY
    runs = collect(folder)
    starts = ["paper"] + sorted({start for start, _ in runs} - {"paper"}, key=lambda s: (round_of(s), s))
    rows = [r for start in starts for objective in ORDER for r in runs.get((start, objective), [])]
    if not rows:
        raise SystemExit(f"no finished run in {folder}: run experiments/paper-regime/run.sh first")
    (STUDY / "paper-table.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(STUDY / "paper-table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from_scratch = any(start == "paper" for start, _ in runs)
    lines = table(runs, "paper") if from_scratch else ["No from-scratch run has finished."]
    diffs = [differences(runs, start, folder) for start in starts[1:]]
    for start, diff in zip(starts[1:], diffs, strict=True):
        r = round_of(start)
        title = f"Round {r}: 6 more epochs from XENT's {6 + 6 * r}-epoch model (`run.sh continue SEED {r}`):"
        if lr := re.fullmatch(START, start)["lr"]:  # the same round run at a set learning rate
            title = f"Round {r} at lr {lr} (`LR={lr} run.sh continue SEED {r}`):"
        lines += ["", title, ""] + table(runs, start)
        if diff["per_seed"]:
            lines += ["", *difference_table(diff)]
    (STUDY / "paper-differences.json").write_text(json.dumps(diffs, indent=2) + "\n")
    (STUDY / "paper-table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
