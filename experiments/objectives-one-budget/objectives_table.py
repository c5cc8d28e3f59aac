"""The same-budget objective comparison (experiments/objectives-one-budget/run.sh) as one table per corpus.

Reads results/objectives-one-budget/*.json and each run's runs/objectives-one-budget/NAME/metrics.csv (reward
statistics per MIXER stage), and writes objectives-<corpus>.json, objectives-<corpus>.csv and their markdown
rendering objectives-tables.md into that folder.

    experiments/objectives-one-budget/run.sh table
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import statistics
import tomllib
from collections import defaultdict
from pathlib import Path

from tables import RESULTS, ROOT, fmt, load, summarise

from textgen.config import recipe_from_checkpoint
from textgen.objectives.schedules import xent_prefix_length

STUDY = "objectives-one-budget"  # results/STUDY/ holds the runs, runs/STUDY/ their logs
METRICS = {"multi30k": ["bleu4"], "aeslc": ["rouge1", "rouge2", "rougeL", "bleu4", "distinct_outputs"]}
BASE = {  # the starting XENT checkpoints' test scores
    "multi30k": RESULTS / "target-vocab" / "multi30k-patience2-test-{}.json",
    "aeslc": RESULTS / "recipes" / "aeslc-test-{}.json",
}
REWARD = {"multi30k": "bleu", "aeslc": "rouge-mix"}  # the training reward each corpus's MIXER uses
COUNTS = {"distinct_outputs"}  # metrics that count outputs: shown without decimals
NAME = re.compile(r"(?P<corpus>multi30k|aeslc)-(?P<objective>.+)-s(?P<seed>\d+)-test-beam(?P<beam>\d)\.json")


def hyp_lines(json_path: Path) -> list[str] | None:
    """The outputs a test result was scored on: hyps/NAME.txt, or hyps/NAME.txt.gz once the study is packed."""
    plain = json_path.parent / "hyps" / json_path.name.replace(".json", ".txt")
    packed = plain.with_name(plain.name + ".gz")
    if plain.exists():
        return plain.read_text().splitlines()
    return gzip.open(packed, "rt").read().splitlines() if packed.exists() else None


def reward_by_stage(run_dir: Path) -> dict[str, dict[str, float]]:
    """Mean sampled reward and fraction of non-zero rewards per scheduled XENT-prefix length s.

    The stage comes from each log row's epoch and the run's recipe (the logged s is clipped to each
    batch's target length, so it is not the stage)."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return {}
    saved = {"recipe": tomllib.loads((run_dir / "recipe.toml").read_text())}  # read as a checkpoint's: old keys move
    cfg = recipe_from_checkpoint(saved).objective.mixer
    acc: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for row in csv.DictReader(path.open()):
        if row.get("reward"):
            stage = xent_prefix_length(cfg, max(0.0, float(row["epoch"]) - 1e-6))  # the row averages the steps up to it
            acc[stage].append((float(row["reward"]), float(row["reward_nonzero"])))
    return {
        str(s): {
            "reward": round(statistics.mean(r for r, _ in v), 4),
            "reward_nonzero": round(statistics.mean(n for _, n in v), 4),
            "log_rows": len(v),
        }
        for s, v in sorted(acc.items(), key=lambda kv: -kv[0])
    }


def bleu_details(corpus: str, hyps: list[str]) -> dict:
    """sacreBLEU's n-gram precisions and length ratio for a hypothesis file (why BLEU moved)."""
    from sacrebleu.metrics import BLEU

    from textgen.data.parallel import load_parallel

    refs = load_parallel(corpus).splits["test"].targets
    result = BLEU().corpus_score(hyps, [refs])
    return {
        "precisions": [round(p, 2) for p in result.precisions],
        "bp": round(result.bp, 4),
        "length_ratio": round(100 * result.sys_len / result.ref_len, 2),
    }  # percent


def collect(corpus: str) -> dict:
    runs: dict[str, dict] = defaultdict(lambda: {"seeds": {}})
    for path in sorted((RESULTS / STUDY).glob(f"{corpus}-*-test-beam*.json")):
        m = NAME.fullmatch(path.name)
        if not m:
            continue
        seed, beam = int(m["seed"]), "greedy" if m["beam"] == "1" else "beam5"
        entry = runs[m["objective"]]["seeds"].setdefault(seed, {})
        metrics = load(path)["metrics"]
        entry[beam] = {k: metrics[k] for k in METRICS[corpus] if k in metrics}
        hyps = hyp_lines(path)
        if hyps is not None:
            entry[beam].update(bleu_details(corpus, hyps))
        name = f"{corpus}-{m['objective']}-s{seed}"
        train = load(RESULTS / STUDY / f"{name}-train.json")
        entry["train_seconds"] = train["metrics"]["train_seconds"]
        entry["train_command"] = train["command"]
        entry["rewards_by_s"] = reward_by_stage(ROOT / "runs" / STUDY / name)
        samples = RESULTS / STUDY / f"{name}-valid-samples.json"
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
        path = Path(str(BASE[corpus]).format(tag))
        if path.exists():
            metrics = load(path)["metrics"]
            base[beam] = {k: metrics[k] for k in METRICS[corpus] if k in metrics}
            hyps = hyp_lines(path)
            if hyps is not None:
                base[beam].update(bleu_details(corpus, hyps))
    start = RESULTS / STUDY / f"{corpus}-start-valid-samples.json"
    if start.exists():
        base["valid_samples"] = load(start)["metrics"]
    return {"corpus": corpus, "start_checkpoint": base, "objectives": table}


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
    parts = []
    for corpus in METRICS:
        result = collect(corpus)
        if not result["objectives"]:
            continue
        (RESULTS / STUDY / f"objectives-{corpus}.json").write_text(json.dumps(result, indent=2) + "\n")
        with (RESULTS / STUDY / f"objectives-{corpus}.csv").open("w", newline="") as f:
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
    (RESULTS / STUDY / "objectives-tables.md").write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
