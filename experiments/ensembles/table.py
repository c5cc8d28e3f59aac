"""The ensembles study's table (results/ensembles/table.md): each system's valid and test2016 BLEU at beam 5, its
decoding speed on test, and each paired bootstrap found. Run through `table` in experiments/lib.sh:
    table experiments/ensembles/table.py"""

from __future__ import annotations

import re
import statistics

from tables import RESULTS, load

STUDY = RESULTS / "ensembles"


def bleu(name: str, split: str) -> float | None:
    path = STUDY / f"{name}-{split}-beam5.json"
    return load(path)["metrics"]["bleu4"] if path.is_file() else None


def speed(name: str) -> float | None:
    path = STUDY / f"{name}-test-beam5.json"
    return load(path)["metrics"]["sentences_per_s"] if path.is_file() else None


def singles(kind: str, label: str) -> list[str]:
    """The rows of each single model KIND-seedN (mt: 25 one-thread minutes; strong: 6,025 updates) and their mean."""
    seeds = sorted(
        int(m.group(1))
        for p in STUDY.glob(f"{kind}-seed*-test-beam5.json")
        if (m := re.fullmatch(kind + r"-seed(\d+)-test-beam5.json", p.name))
    )
    scores = [(bleu(f"{kind}-seed{n}", "valid"), bleu(f"{kind}-seed{n}", "test")) for n in seeds]
    out = [f"| {label.format(n=n)} | {v} | {t} | {speed(f'{kind}-seed{n}')} |" for n, (v, t) in zip(seeds, scores)]
    if scores:
        v, t = (statistics.mean(x[i] for x in scores) for i in (0, 1))
        out.append(f"| mean of the {len(scores)} {'strong ' if kind == 'strong' else ''}seeds | {v:.2f} | {t:.2f} | |")
    return out


def ensemble_rows(kind: str) -> list[str]:
    """The rows of each KIND-ensemble-N-M-...: the ensemble of those seeds (or the LSTM with the Transformer)."""
    out = []
    for p in sorted(q for q in STUDY.glob(f"{kind}-ensemble-*-test-beam5.json") if "-vs-" not in q.name):
        name = p.name.removesuffix("-test-beam5.json")
        what = name.removeprefix(f"{kind}-ensemble-")
        label = (
            "LSTM seed 1 + the Transformer"
            if what == "lstm-transformer"
            else f"ensemble of {'strong ' if kind == 'strong' else ''}seeds {what.replace('-', ', ')}"
        )
        out.append(f"| {label} | {bleu(name, 'valid')} | {bleu(name, 'test')} | {speed(name)} |")
    return out


def student_rows(kind: str) -> list[str]:
    """The rows of each KIND-student-MIX-seedN (trained on the KIND ensemble's outputs) and each MIX's mean."""
    out, students = [], {}
    for p in sorted(q for q in STUDY.glob(f"{kind}-student-*-test-beam5.json") if "-vs-" not in q.name):
        name = p.name.removesuffix("-test-beam5.json")
        mix, n = re.fullmatch(kind + r"-student-(\w+)-seed(\d+)", name).groups()
        v, t = bleu(name, "valid"), bleu(name, "test")
        students.setdefault(mix, []).append((v, t))
        targets = "its outputs" if mix == "distilled" else "the originals and its outputs"
        teacher = "the strong 4-ensemble" if kind == "strong" else "the 4-ensemble"
        out.append(f"| student of {teacher}, trained on {targets}, seed {n} | {v} | {t} | {speed(name)} |")
    for mix, scores in students.items():
        if len(scores) > 1:
            out.append(mean_row(f"{'strong ' if kind == 'strong' else ''}{mix} students", scores))
    return out


def mean_row(what: str, scores: list[tuple[float | None, float]]) -> str:
    """The row of the mean over seeds of (valid, test) scores, test ± sd; valid left blank where a seed lacks it."""
    valid, test = [v for v, _ in scores if v is not None], [t for _, t in scores]
    v = f"{statistics.mean(valid):.2f}" if len(valid) == len(scores) else ""
    t = f"{statistics.mean(test):.2f} ± {statistics.stdev(test):.2f}"
    return f"| mean of the {len(scores)} {what} (test ± sd) | {v} | {t} | |"


def finetune_rows() -> list[str]:
    """The rows of each student-METHOD-sN (experiments/finetune/run.sh student: strong student N fine-tuned with
    finetune-METHOD) and each method's mean over seeds."""
    out, methods = [], {}
    for p in sorted(q for q in STUDY.glob("student-*-s*-test-beam5.json") if "-vs-" not in q.name):
        name = p.name.removesuffix("-test-beam5.json")
        method, n = re.fullmatch(r"student-([\w-]+)-s(\d+)", name).groups()
        v, t = bleu(name, "valid"), bleu(name, "test")
        methods.setdefault(method, []).append((v, t))
        label = f"strong distilled student seed {n}, fine-tuned with `finetune-{method}`"
        out.append(f"| {label} | {v} | {t} | {speed(name)} |")
    for method, scores in methods.items():
        if len(scores) > 1:
            out.append(mean_row(f"students fine-tuned with `finetune-{method}`", scores))
    return out


def rows() -> list[str]:
    out = ["| system | valid BLEU | test BLEU | test sentences/s |", "|---|---|---|---|"]
    out += singles("mt", "seed {n} alone")
    for p in sorted(q for q in STUDY.glob("mt-seed*-avg*-test-beam5.json") if "-vs-" not in q.name):
        name = p.name.removesuffix("-test-beam5.json")
        n, k = re.fullmatch(r"mt-seed(\d+)-avg(\d+)", name).groups()
        label = f"seed {n}, mean of its last {k} kept checkpoints"
        out.append(f"| {label} | {bleu(name, 'valid')} | {bleu(name, 'test')} | {speed(name)} |")
    out += ensemble_rows("mt")
    out += singles("strong", "strong seed {n} alone (6,025 updates)")
    out += ensemble_rows("strong")
    out += student_rows("mt") + student_rows("strong") + finetune_rows()
    for p in sorted(STUDY.glob("*-rerank.json")):
        name = p.name.removesuffix("-rerank.json")
        tuned = load(p)
        test = (
            load(STUDY / f"{name}-rerank-test.json")["metrics"]
            if (STUDY / f"{name}-rerank-test.json").is_file()
            else {}
        )
        w = ", ".join(f"{k} {v:g}" for k, v in tuned["weights"].items())
        valid = f"{tuned['valid_bleu4_reranked']} (beam 8: {tuned['valid_bleu4_beam8']})"
        out.append(f"| {name} reranked (8-best; {w}) | {valid} | {test.get('bleu4')} | {test.get('sentences_per_s')} |")
    return out


def pairs() -> list[str]:
    out = []
    for p in sorted(STUDY.glob("*-vs-*.json")):
        m = load(p)["metrics"]
        keys = [k for k in m if k.endswith("_p_bootstrap")]
        for k in keys:
            sys1 = k.removesuffix("_p_bootstrap")
            base = sys1.replace("sys1_", "sys0_")
            out.append(f"- {p.stem}: {m[sys1] - m[base]:+.2f} BLEU, p = {m[k]}")
    return out


if __name__ == "__main__":
    text = "\n".join(rows() + [""] + pairs()) + "\n"
    (STUDY / "table.md").write_text(text)
    print(text)
