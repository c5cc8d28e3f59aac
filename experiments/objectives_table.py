"""Collect the objective comparison (experiments/compare-objectives.sh) into one table per corpus.

Reads results/objectives/*.json and each run's metrics.csv (reward statistics per MIXER stage), and
writes results/objectives-<corpus>.json, results/objectives-<corpus>.csv and a markdown rendering
results/objectives-tables.md (pasted into docs/RESULTS.md).

    python experiments/objectives_table.py
    python experiments/objectives_table.py --name objectives-remeasured   # issue #12: results/objectives-remeasured/
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from textgen.config import from_dict  # noqa: E402
from textgen.objectives.schedules import mixer_s  # noqa: E402

RESULTS = ROOT / "results"
NAME_DIR = "objectives"  # results/NAME/ holds the runs, runs/NAME/ their logs; outputs are results/NAME-*.{json,csv,md}
METRICS = {"multi30k": ["bleu4"], "aeslc": ["rouge1", "rouge2", "rougeL", "bleu4", "distinct_outputs"]}
BASE = {"multi30k": "multi30k-patience2-test-{}.json", "aeslc": "aeslc-test-{}.json"}  # the starting XENT checkpoints
REWARD = {"multi30k": "bleu", "aeslc": "rouge-mix"}  # the training reward each corpus's MIXER uses
COUNTS = {"distinct_outputs"}  # metrics that count outputs: shown without decimals
NAME = re.compile(r"(?P<corpus>multi30k|aeslc)-(?P<objective>.+)-s(?P<seed>\d+)-test-beam(?P<beam>\d)\.json")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def reward_by_stage(run_dir: Path) -> dict[str, dict[str, float]]:
    """Mean sampled reward and fraction of non-zero rewards per scheduled XENT-prefix length s.

    The stage comes from each log row's epoch and the run's recipe (the logged s is clipped to each
    batch's target length, so it is not the stage)."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return {}
    cfg = from_dict(tomllib.loads((run_dir / "recipe.toml").read_text())).objective
    acc: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for row in csv.DictReader(path.open()):
        if row.get("reward"):
            stage = mixer_s(cfg, max(0.0, float(row["epoch"]) - 1e-6))  # the row averages the steps up to it
            acc[stage].append((float(row["reward"]), float(row["reward_nonzero"])))
    return {
        str(s): {
            "reward": round(statistics.mean(r for r, _ in v), 4),
            "reward_nonzero": round(statistics.mean(n for _, n in v), 4),
            "log_rows": len(v),
        }
        for s, v in sorted(acc.items(), key=lambda kv: -kv[0])
    }


def bleu_details(corpus: str, hyp_file: Path) -> dict:
    """sacreBLEU's n-gram precisions and length ratio for a hypothesis file (why BLEU moved)."""
    from sacrebleu.metrics import BLEU

    from textgen.data.parallel import load_parallel

    refs = load_parallel(corpus).splits["test"].targets
    hyps = hyp_file.read_text().splitlines()
    result = BLEU().corpus_score(hyps, [refs])
    return {
        "precisions": [round(p, 2) for p in result.precisions],
        "bp": round(result.bp, 4),
        "length_ratio": round(100 * result.sys_len / result.ref_len, 2),
    }  # percent


def summarise(values: list[float]) -> dict:
    out = {"mean": round(statistics.mean(values), 2), "n": len(values), "values": values}
    if len(values) > 1:
        out["std"] = round(statistics.stdev(values), 2)
    return out


def checked_pair(
    versus: Path, base: str, system_hyp: str, base_score: float, system_score: float | None, metric: str, rerun: str
) -> tuple[float, float]:
    """A paired bootstrap's difference and p on `metric`, from one file, checked to compare the output `base` (a
    file name without .txt) with `system_hyp` (a path ending) as both are scored today (a re-run of either makes
    the file stale: the command `rerun` makes it again)."""
    pair = load(versus)
    base_file, system_file = pair["systems"]
    same = Path(base_file).name == f"{base}.txt" and ("/" + system_file).endswith("/" + system_hyp)
    assert same and f"sys1_{metric}" in pair["metrics"], f"{versus} compares other outputs or on another metric"
    fresh = pair["metrics"][f"sys0_{metric}"] == base_score and pair["metrics"][f"sys1_{metric}"] == system_score
    assert fresh, f"{versus} is stale: re-run {rerun}"
    return round(system_score - base_score, 2), pair["metrics"][f"sys1_{metric}_p_bootstrap"]


def collect(corpus: str) -> dict:
    runs: dict[str, dict] = defaultdict(lambda: {"seeds": {}})
    for path in sorted((RESULTS / NAME_DIR).glob(f"{corpus}-*-test-beam*.json")):
        m = NAME.fullmatch(path.name)
        if not m:
            continue
        seed, beam = int(m["seed"]), "greedy" if m["beam"] == "1" else "beam5"
        entry = runs[m["objective"]]["seeds"].setdefault(seed, {})
        metrics = load(path)["metrics"]
        entry[beam] = {k: metrics[k] for k in METRICS[corpus] if k in metrics}
        hyp_file = RESULTS / NAME_DIR / "hyps" / path.name.replace(".json", ".txt")
        if hyp_file.exists():
            entry[beam].update(bleu_details(corpus, hyp_file))
        name = f"{corpus}-{m['objective']}-s{seed}"
        train = load(RESULTS / NAME_DIR / f"{name}-train.json")
        entry["train_seconds"] = train["metrics"]["train_seconds"]
        entry["train_command"] = train["command"]
        entry["rewards_by_s"] = reward_by_stage(ROOT / "runs" / NAME_DIR / name)
        samples = RESULTS / NAME_DIR / f"{name}-valid-samples.json"
        if samples.exists():
            entry["valid_samples"] = load(samples)["metrics"]
    table = {}
    for objective, data in runs.items():
        row = {"seeds": sorted(data["seeds"])}
        for beam in ("greedy", "beam5"):
            for metric in [*METRICS[corpus], "length_ratio"]:
                values = [s[beam][metric] for s in data["seeds"].values() if beam in s and metric in s[beam]]
                if values:
                    row[f"{metric}_{beam}"] = summarise(values)
        row["train_seconds"] = summarise([s["train_seconds"] for s in data["seeds"].values()])
        row["runs"] = data["seeds"]
        table[objective] = row
    base = {}
    for beam, tag in (("greedy", "greedy"), ("beam5", "beam5")):
        path = RESULTS / BASE[corpus].format(tag)
        if path.exists():
            metrics = load(path)["metrics"]
            base[beam] = {k: metrics[k] for k in METRICS[corpus] if k in metrics}
            hyp_file = RESULTS / "hyps" / path.name.replace(".json", ".txt")
            if hyp_file.exists():
                base[beam].update(bleu_details(corpus, hyp_file))
    start = RESULTS / NAME_DIR / f"{corpus}-start-valid-samples.json"
    if start.exists():
        base["valid_samples"] = load(start)["metrics"]
    return {"corpus": corpus, "start_checkpoint": base, "objectives": table}


def fmt(cell: dict | None, digits: int = 2, signed: bool = False) -> str:
    """A summarise() cell as "mean ± std (n=N)", or the mean alone for one run; digits=0 for counts (a score
    that happens to be whole still shows two decimals), signed for differences."""
    if not cell:
        return "–"
    mean = f"{cell['mean']:{'+' if signed else ''}.{digits}f}"
    return f"{mean} ± {cell['std']:.{digits}f} (n={cell['n']})" if "std" in cell else mean


def markdown(result: dict) -> str:
    corpus = result["corpus"]
    metrics = METRICS[corpus]
    lines = [f"### {corpus}", ""]
    for beam in ("greedy", "beam5"):
        lines += [
            f"{beam}:",
            "",
            "| objective | " + " | ".join(metrics) + " | hyp/ref length % | train seconds |",
            "|---" * (len(metrics) + 3) + "|",
        ]
        base = result["start_checkpoint"].get(beam, {})
        lines.append(
            "| start: the XENT checkpoint | "
            + " | ".join(str(base.get(m, "–")) for m in metrics)
            + f" | {base.get('length_ratio', '–')} | – |"
        )
        for objective, row in result["objectives"].items():
            cells = [fmt(row.get(f"{m}_{beam}"), 0 if m in COUNTS else 2) for m in [*metrics, "length_ratio"]]
            lines.append(f"| {objective} | " + " | ".join(cells) + f" | {row['train_seconds']['mean']:.0f} |")
        lines.append("")
    reward = REWARD[corpus]
    lines += [
        f"Validation {reward} of one sample per source (temperature 1) and of the greedy output, and the "
        "mean log-probability per sampled token:",
        "",
        "| run | sample reward | greedy reward | sample log p / token |",
        "|---|---|---|---|",
    ]
    runs = [("start: the XENT checkpoint", result["start_checkpoint"].get("valid_samples"))]
    runs += [
        (f"{objective} seed {seed}", run.get("valid_samples"))
        for objective, row in result["objectives"].items()
        for seed, run in row["runs"].items()
    ]
    for label, m in runs:
        if m:
            lines.append(
                f"| {label} | {m[f'sample_{reward}_mean']:.3f} | {m[f'greedy_{reward}_mean']:.3f} | "
                f"{m['sample_logprob_per_token']:.3f} |"
            )
    lines.append("")
    lines += [
        "Sampled rewards per MIXER stage (XENT prefix s; training-log means):",
        "",
        "| run | s | mean reward | samples with reward > 0 |",
        "|---|---|---|---|",
    ]
    for objective, row in result["objectives"].items():
        for seed, run in row["runs"].items():
            for s, stats in run["rewards_by_s"].items():
                lines.append(
                    f"| {objective} seed {seed} | {s} | {stats['reward']:.3f} | {stats['reward_nonzero']:.3f} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    global NAME_DIR
    if sys.argv[1:2] == ["--name"]:
        NAME_DIR = sys.argv[2]
    parts = []
    for corpus in METRICS:
        result = collect(corpus)
        if not result["objectives"]:
            continue
        (RESULTS / f"{NAME_DIR}-{corpus}.json").write_text(json.dumps(result, indent=2) + "\n")
        with (RESULTS / f"{NAME_DIR}-{corpus}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["objective", "seed", "beam", *METRICS[corpus], "train_seconds"])
            for objective, row in result["objectives"].items():
                for seed, run in row["runs"].items():
                    for beam in ("greedy", "beam5"):
                        if beam in run:
                            writer.writerow(
                                [
                                    objective,
                                    seed,
                                    beam,
                                    *(run[beam].get(m, "") for m in METRICS[corpus]),
                                    run["train_seconds"],
                                ]
                            )
        parts.append(markdown(result))
    (RESULTS / f"{NAME_DIR}-tables.md").write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
