"""The fine-tuning tables: experiments/finetune/run.sh's runs from a recipe model (results/finetune-CORPUS/
QUEUE-[long-]METHOD-sN-*.json), `compare`'s paired bootstraps against the same seed and budget's XENT, and the MBR
decodings of those models (results/finetune-CORPUS/mbr/[long-]METHOD-sN/, experiments/mbr/run.sh one), written to
results/finetune-CORPUS/QUEUE-table.{json,md}. Multi30k's `strong` queue holds both budgets (2 and 4 epochs);
AESLC's is tabulated on ROUGE-2, with distinct beam-5 outputs.

    experiments/finetune/run.sh table [strong | tatoeba | aeslc-strong | aeslc-brio | transformer]

run.sh passes the queue's control, the XENT run its runs were paired with (its `control`), as a second argument.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from tables import RESULTS, checked_pair, fmt, load, summarise

TABLES = {  # queue: (metric, study folder under results/, MBR setting chosen on validation)
    "strong": ("bleu4", "finetune-multi30k", "mbr32-bleu-beam5"),  # chosen by experiments/mbr/run.sh valid
    "tatoeba": ("bleu4", "finetune-tatoeba", "mbr32-bleu-beam5"),
    "aeslc-strong": ("rouge2", "finetune-aeslc", "mbr32-rouge2-beam5"),
    "aeslc-brio": ("rouge2", "finetune-aeslc", None),  # no MBR: finetune-aeslc/mbr/ holds aeslc-strong's models
    "transformer": ("bleu4", "finetune-multi30k-transformer", "mbr32-bleu-beam5"),  # strong's setting
}
VALID_SEARCH = {"aeslc-brio": "beam 5; greedy for xent and rank"}  # queue: the search its runs validate with
UTILITY = {"bleu4": "sentence-BLEU", "rouge2": "ROUGE-2"}
START = {  # queue: the start model's scores (aeslc-brio trains its own start model, run.sh start_model)
    "strong": {"valid greedy": "strong-start-valid-beam1.json", "valid beam5": "strong-start-valid-beam5.json"},
    "aeslc-brio": {"test greedy": "aeslc-brio-start-test-beam1.json", "test beam5": "aeslc-brio-start-test-beam5.json"},
}


def folder(queue: str) -> Path:
    return RESULTS / TABLES[queue][1]


def mbr_run(queue: str, run: str, budget: str, seed: str, metric: str) -> dict:
    """One model's MBR decodings (experiments/mbr/run.sh one ..., in results/finetune-CORPUS/mbr/RUN): validation
    beam 5 and MBR, test MBR and its paired bootstrap against the same seed and budget's XENT with beam 5 (compare)."""
    setting = TABLES[queue][2]
    if setting is None:
        return {}
    mbr, out = folder(queue) / "mbr" / run, {}
    for key, name in (("valid_beam5", "valid-beam5"), ("valid_mbr", f"valid-{setting}"),
                      ("test_mbr", f"test-{setting}")):  # fmt: skip
        if (mbr / f"{name}.json").exists():
            out[key] = load(mbr / f"{name}.json")["metrics"][metric]
    versus = mbr / f"test-{setting}-vs-xent-beam5.json"
    if versus.exists():
        base = f"{queue}-{budget}xent-s{seed}-test-beam5"
        out["diff_vs_xent_mbr"], out["p_vs_xent_mbr"] = paired(queue, versus, base, f"{run}/hyps/test-{setting}.txt",
                                                               out.get("test_mbr"), metric)  # fmt: skip
    return out


def paired(
    queue: str, versus: Path, base: str, system_hyp: str, system_score: float | None, metric: str
) -> tuple[float, float]:
    """checked_pair against the XENT output `base` of the queue's study folder, as `run.sh compare` made it."""
    base_score = load(folder(queue) / f"{base}.json")["metrics"][metric]
    return checked_pair(
        versus, base, system_hyp, base_score, system_score, metric, "experiments/finetune/run.sh compare"
    )


def collect(queue: str = "strong", control: str = "xent") -> dict:
    metric = TABLES[queue][0]
    pattern = re.compile(rf"{re.escape(queue)}-(?P<method>(?P<budget>long-)?.+)-s(?P<seed>\d+)-train\.json")
    methods: dict[str, dict] = defaultdict(dict)
    out = folder(queue)
    for path in sorted(out.glob(f"{queue}-*-train.json")):
        m = pattern.fullmatch(path.name)
        if not m:
            continue
        name, train = path.name.removesuffix("-train.json"), load(path)["metrics"]
        run = {f"best_valid_{metric}": train[f"best_valid_{metric}"], "train_seconds": train["train_seconds"],
               "updates": train["steps"]}  # fmt: skip
        for beam, tag in ((1, "greedy"), (5, "beam5")):
            test = out / f"{name}-test-beam{beam}.json"
            if test.exists():
                scores = load(test)["metrics"]
                run[f"test_{tag}"], run[f"distinct_{tag}"] = scores[metric], scores["distinct_outputs"]
            versus = out / f"{name}-vs-xent-beam{beam}.json"
            if versus.exists():  # the difference and its p from one file: the pair the bootstrap compared
                base = f"{queue}-{m['budget'] or ''}{control}-s{m['seed']}-test-beam{beam}"
                run[f"diff_vs_xent_{tag}"], run[f"p_vs_xent_{tag}"] = paired(
                    queue, versus, base, f"{name}-test-beam{beam}.txt", run.get(f"test_{tag}"), metric
                )
        run.update(mbr_run(queue, f"{m['method']}-s{m['seed']}", m["budget"] or "", m["seed"], metric))
        methods[m["method"]][int(m["seed"])] = run
    table = {}
    for method, seeds in methods.items():
        row = {"seeds": sorted(seeds), "runs": seeds}
        for key in (f"best_valid_{metric}", "test_greedy", "test_beam5", "diff_vs_xent_greedy", "diff_vs_xent_beam5",
                    "distinct_greedy", "distinct_beam5", "train_seconds", "valid_beam5", "valid_mbr", "test_mbr",
                    "diff_vs_xent_mbr"):  # fmt: skip
            values = [r[key] for r in seeds.values() if key in r]
            if values:
                row[key] = summarise(values)
        table[method] = row
    start = {k: load(out / f)["metrics"][metric] for k, f in START.get(queue, {}).items() if (out / f).exists()}
    return {"queue": queue, "metric": metric, "control": control, "start": start, "methods": table}


def versus(run: dict, tag: str) -> str:
    """The difference to the same seed and budget's XENT, and its paired-bootstrap p."""
    if f"p_vs_xent_{tag}" not in run:
        return "–"
    return f"{run[f'diff_vs_xent_{tag}']:+.2f} (p {run[f'p_vs_xent_{tag}']:.3f})"


ROWS = ("xent", "xent-valid-beam5", "mixer-loo", "mixer", "mrt", "rank")  # the best sequence-level recipe next to XENT


def order(method: str) -> tuple[bool, int, str]:  # 2-epoch budget first, then ROWS' order
    short = method.removeprefix("long-")
    return method.startswith("long-"), ROWS.index(short) if short in ROWS else len(ROWS), method


def markdown(result: dict) -> str:
    methods, name = result["methods"], {"bleu4": "BLEU", "rouge2": "ROUGE-2"}[result["metric"]]
    valid_key = f"best_valid_{result['metric']}"
    distinct = result["metric"] != "bleu4"  # summaries: how many different outputs (generic-subject collapse)
    lines = [
        f"| fine-tune | seeds | best valid {name} ({VALID_SEARCH.get(result['queue'], 'greedy')}) | test greedy | "
        "test beam 5 | "
        + ("distinct beam-5 outputs | " if distinct else "")
        + "test vs the seed's XENT, greedy / beam 5 (paired bootstrap p) | train s (× XENT, loaded machine) |",
        "|---|---|---|---|---|---|---|" + ("---|" if distinct else ""),
    ]
    control = result["control"]
    for method in sorted(methods, key=order):
        row = methods[method]
        xent = methods.get(f"long-{control}" if method.startswith("long-") else control, {}).get("train_seconds", {})
        ps = "; ".join(
            f"s{seed}: {versus(run, 'greedy')} / {versus(run, 'beam5')}"
            for seed, run in sorted(row["runs"].items())
            if "p_vs_xent_greedy" in run or "p_vs_xent_beam5" in run
        )
        if "diff_vs_xent_greedy" in row and row["diff_vs_xent_greedy"]["n"] > 1:
            ps += "; mean " + " / ".join(fmt(row.get(f"diff_vs_xent_{t}"), signed=True) for t in ("greedy", "beam5"))
        seconds = row["train_seconds"]["mean"]
        ratio = f" ({seconds / xent['mean']:.1f}×)" if xent else ""
        lines.append(
            f"| {method} | {', '.join(map(str, row['seeds']))} | {fmt(row.get(valid_key))} | "
            f"{fmt(row.get('test_greedy'))} | {fmt(row.get('test_beam5'))} | "
            + (f"{fmt(row.get('distinct_beam5'), digits=0)} | " if distinct else "")
            + f"{ps or '–'} | {seconds:.0f}{ratio} |"
        )
    if result["start"]:
        lines += ["", "The start model: " + ", ".join(f"{k} {v:.2f}" for k, v in result["start"].items()) + "."]
    if not any("valid_mbr" in run for row in methods.values() for run in row["runs"].values()):
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"MBR decoding ({TABLES[result['queue']][2]}: 32 epsilon samples + beam 5's 5 best, "
        f"{UTILITY[result['metric']]} utility, seed 1):",
        "",
        "| fine-tune | seed | valid beam 5 | valid MBR | test beam 5 | test MBR | "
        "test MBR vs the seed's XENT beam 5 (p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in sorted(methods, key=order):
        for seed, run in sorted(methods[method]["runs"].items()):
            if "valid_mbr" in run or "test_mbr" in run:
                cells = [run.get(k) for k in ("valid_beam5", "valid_mbr", "test_beam5", "test_mbr")]
                text = " | ".join("–" if c is None else f"{c:.2f}" for c in cells)
                lines.append(f"| {method} | {seed} | {text} | {versus(run, 'mbr')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    queue = sys.argv[1] if len(sys.argv) > 1 else "strong"
    if queue not in TABLES:
        sys.exit(f"unknown queue '{queue}': choose from {', '.join(TABLES)}")
    result = collect(queue, sys.argv[2] if len(sys.argv) > 2 else "xent")
    (folder(queue) / f"{queue}-table.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (folder(queue) / f"{queue}-table.md").write_text(text)
    print(result["start"])
    print(text)


if __name__ == "__main__":
    main()
