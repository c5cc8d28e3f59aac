"""n-best reranking: the forward model's n best, rescored with other models (Yee et al. 2019, noisy channel).

Each candidate y of a source x gets four features: the forward model's beam score (log p(y|x), length-normalised
as the beam's lenpen says), a reverse-direction model's log p(x|y) (`Translator.score` with the candidate as
source), a target-side language model's log p(y), and y's length in words; the output is the candidate with the
highest weighted sum. The weights are tuned on a validation split by coordinate ascent over a grid on the corpus
metric (the forward weight fixed at 1: only ratios matter), and saved with the paths of the models they belong to:
`textgen rerank` writes the file, `textgen decode --rerank FILE` and `textgen eval --rerank FILE` use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from textgen.errors import UserError

FEATURES = ("forward", "reverse", "lm", "length")
GRID = tuple(round(-2.0 + 0.1 * i, 1) for i in range(41))  # each weight's values: -2 to 2 in steps of 0.1


@dataclass
class Reranker:
    """Weights per feature and the models that compute the reverse and LM features (None: not used)."""

    weights: dict[str, float]
    nbest: int
    reverse: object = None  # a Translator from target to source
    lm: object = None  # a LanguageModel of the target side
    paths: dict[str, str | None] = field(default_factory=dict)

    def features(self, sources: list[str], nbests: list[list[tuple[str, float]]]) -> list[list[list[float]]]:
        """Per source, per candidate: [forward, reverse, lm, length] (a feature without its model is 0)."""
        flat = [(i, text, score) for i, nbest in enumerate(nbests) for text, score in nbest]
        texts = [text for _, text, _ in flat]
        reverse = [0.0] * len(flat)
        if self.reverse is not None and flat:
            reverse = [s.total for s in self.reverse.score(texts, [sources[i] for i, _, _ in flat])]
        lm = [0.0] * len(flat)
        if self.lm is not None:
            kept = [k for k, text in enumerate(texts) if text.strip()]  # an empty output has no LM score: 0
            for k, s in zip(kept, self.lm.score([texts[k] for k in kept])):
                lm[k] = s.total
        out: list[list[list[float]]] = [[] for _ in nbests]
        for k, (i, text, score) in enumerate(flat):
            out[i].append([score, reverse[k], lm[k], float(len(text.split()))])
        return out

    def choose(self, sources: list[str], nbests: list[list[tuple[str, float]]]) -> list[str]:
        """The best candidate per source under the weights ("" for a source without candidates)."""
        return pick(nbests, self.features(sources, nbests), [self.weights[f] for f in FEATURES])

    def save(self, path: str | Path, **extra) -> None:
        Path(path).write_text(
            json.dumps({"weights": self.weights, "nbest": self.nbest, **self.paths, **extra}, indent=2) + "\n"
        )


def pick(nbests: list[list[tuple[str, float]]], features: list[list[list[float]]], weights: list[float]) -> list[str]:
    """Per source, the candidate whose features' weighted sum is highest (the first among equals)."""
    out = []
    for nbest, rows in zip(nbests, features):
        totals = [sum(w * f for w, f in zip(weights, row)) for row in rows]
        out.append(nbest[max(range(len(totals)), key=totals.__getitem__)][0] if totals else "")
    return out


def tune(
    nbests: list[list[tuple[str, float]]], features: list[list[list[float]]], corpus_score, active: list[str], rounds=3
) -> tuple[dict[str, float], float]:
    """Weights (forward 1, the `active` others from GRID, the rest 0) that maximise corpus_score(chosen outputs),
    by coordinate ascent from all-zero others; returns them and the score they reach."""
    weights = dict.fromkeys(FEATURES, 0.0) | {"forward": 1.0}

    def value(w: dict[str, float]) -> float:
        return corpus_score(pick(nbests, features, [w[f] for f in FEATURES]))

    best = value(weights)
    for _ in range(rounds):
        changed = False
        for name in active:
            for v in GRID:
                trial = weights | {name: v}
                score = value(trial)
                if score > best + 1e-9:
                    best, weights, changed = score, trial, True
        if not changed:
            break
    return weights, best


def load(path: str | Path, device: str = "auto") -> Reranker:
    """A weights file from `textgen rerank`, with its reverse model and language model loaded."""
    from textgen.api import load as load_model

    try:
        data = json.loads(Path(path).read_text())
        weights = {f: float(data["weights"][f]) for f in FEATURES}
        nbest = int(data["nbest"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"'{path}' is not a reranking file written by textgen rerank ({type(exc).__name__})") from None
    reverse = load_model(data["reverse"], device, kind="seq2seq") if data.get("reverse") else None
    lm = load_model(data["lm"], device, kind="lm") if data.get("lm") else None
    return Reranker(weights, nbest, reverse, lm, {"reverse": data.get("reverse"), "lm": data.get("lm")})


def corpus_metric(metric: str, references: list[str]):
    """hyps -> the corpus `metric` against one reference stream, unrounded: BLEU by sacrebleu over the outputs,
    ROUGE as the mean of per-output F1s, each computed once per distinct (source, output)."""
    from textgen.metrics import best_reference_f1, bleu4, check_metrics

    check_metrics([metric])
    if metric.startswith("bleu4"):
        return lambda hyps: bleu4(hyps, [references], lowercase=metric == "bleu4-lc")[0]
    cache: dict[tuple[int, str], float] = {}

    def rouge(hyps: list[str]) -> float:
        for i, h in enumerate(hyps):
            if (i, h) not in cache:
                cache[i, h] = best_reference_f1(h, [references[i]], (metric,))[metric]
        return 100.0 * sum(cache[i, h] for i, h in enumerate(hyps)) / max(1, len(hyps))

    return rouge


def tune_on_split(
    ckpts: list[Path],
    output: str | Path,
    reverse: Path | None = None,
    lm: Path | None = None,
    nbest: int = 8,
    metric: str = "bleu4",
    split: str = "valid",
    data: str | None = None,
    batch_size: int | None = None,
    device: str = "auto",
) -> dict:
    """`textgen rerank`: decode `split` with the forward checkpoint(s) into n-best lists (beam = nbest), compute
    the features, tune the weights of those whose model is given (and length), and write them to `output`;
    returns what the file holds."""
    from textgen.api import load as load_model
    from textgen.device import resolve_device
    from textgen.evaluate import open_split
    from textgen.paths import output_file

    output = output_file(output, "-o", "rerank.json")
    if not 2 <= nbest <= 1024:
        raise UserError(f"--nbest must be from 2 to 1024 (candidates to rerank), got {nbest}")
    paths = {"reverse": str(reverse) if reverse else None, "lm": str(lm) if lm else None}
    reranker = Reranker(
        dict.fromkeys(FEATURES, 0.0) | {"forward": 1.0},
        nbest,
        load_model(reverse, device, kind="seq2seq") if reverse else None,
        load_model(lm, device, kind="lm") if lm else None,
        paths,
    )
    score = corpus_metric(metric, [])  # checks the metric's name before any decoding
    s = open_split(ckpts, data, split, resolve_device(device), nbest=nbest, beam=nbest, batch_size=batch_size)
    nbests = [d.nbest for d in s.decode()]
    features = reranker.features(s.part.sources, nbests)
    score = corpus_metric(metric, s.references()[0])
    plain = score(pick(nbests, features, [1.0, 0.0, 0.0, 0.0]))
    active = [f for f in ("reverse", "lm") if paths[f]] + ["length"]
    reranker.weights, tuned = tune(nbests, features, score, active)
    summary = {
        "checkpoints": [str(c) for c in ckpts],
        "metric": metric,
        "split": split,
        f"{split}_{metric}_beam{nbest}": round(plain, 2),
        f"{split}_{metric}_reranked": round(tuned, 2),
    }
    reranker.save(output, **summary)
    return json.loads(Path(output).read_text())
