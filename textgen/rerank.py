"""n-best reranking: the forward model's n best, rescored with other models (Yee et al. 2019, noisy channel).

Each candidate y of a source x gets four features, three of them log-probabilities per token so that their
scales agree: the forward model's beam score (log p(y|x) / |y|^lenpen, the tuning beam's lenpen), a
reverse-direction model's log p(x|y) per source token (`Translator.score` with the candidate as source), a
target-side language model's log p(y + line end) per token (the line end lets an empty output be scored), and y's
length in words; the output is the candidate with the highest weighted sum. The weights are tuned on the
validation split by coordinate ascent over a grid on the corpus metric (the forward weight fixed at 1: only ratios
matter), and saved with the absolute paths of the models they belong to and the lenpen they were tuned with:
`textgen rerank` writes the file, `textgen decode --rerank FILE` and `textgen eval --rerank FILE` use it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from textgen.errors import UserError

FEATURES = ("forward", "reverse", "lm", "length")
PLAIN = {"forward": 1.0, "reverse": 0.0, "lm": 0.0, "length": 0.0}  # beam search's own choice
_STEPS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
GRID = tuple(sorted({0.0, *_STEPS, *(-v for v in _STEPS)}))  # each weight's values: 0 and ±0.01 ... ±2, log-spaced


@dataclass
class Reranker:
    """Weights per feature and the models that compute the reverse and LM features (None: not used)."""

    weights: dict[str, float]
    nbest: int
    lenpen: float
    reverse: object = None  # a Translator from target to source
    lm: object = None  # a LanguageModel of the target side
    paths: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_paths(cls, weights, nbest: int, lenpen: float, reverse, lm, device: str) -> Reranker:
        """With its reverse model and language model loaded from their checkpoints (None: that feature unused)."""
        from textgen.api import load as load_model

        paths = {
            "reverse": str(Path(reverse).resolve()) if reverse else None,
            "lm": str(Path(lm).resolve()) if lm else None,
        }
        reverse = load_model(paths["reverse"], device, kind="seq2seq") if reverse else None
        lm = load_model(paths["lm"], device, kind="lm") if lm else None
        return cls(weights, nbest, lenpen, reverse, lm, paths)

    def decode_settings(self, beam: int | None, lenpen: float | None, nbest: int = 1, sample=False, mbr=None) -> dict:
        """The beam search the reranking needs: its n best, a beam at least as wide, the lenpen it was tuned with."""
        if nbest != 1 or sample or mbr is not None:
            raise UserError("reranking picks one of beam search's n best: give it without nbest, sample or mbr")
        if lenpen is not None and lenpen != self.lenpen:
            raise UserError(f"the reranking weights were tuned with lenpen {self.lenpen:g}: leave --lenpen out")
        return {"nbest": self.nbest, "beam": max(beam or self.nbest, self.nbest), "lenpen": self.lenpen}

    def features(self, sources: list[str], nbests: list[list[tuple[str, float]]]) -> list[list[list[float]]]:
        """Per source, per candidate: [forward, reverse, lm, length] (a feature without its model is 0)."""
        flat = [(i, text, score) for i, nbest in enumerate(nbests) for text, score in nbest]
        texts = [text for _, text, _ in flat]
        reverse = [0.0] * len(flat)
        if self.reverse is not None and flat:
            reverse = [s.mean for s in self.reverse.score(texts, [sources[i] for i, _, _ in flat])]
        lm = [0.0] * len(flat)
        if self.lm is not None and flat:
            lm = [s.mean for s in self.lm.score([text + "\n" for text in texts])]  # the line end: "" is scored too
        out: list[list[list[float]]] = [[] for _ in nbests]
        for k, (i, text, score) in enumerate(flat):
            out[i].append([score, reverse[k], lm[k], float(len(text.split()))])
        return out

    def choose(self, sources: list[str], nbests: list[list[tuple[str, float]]]) -> list[str]:
        """The best candidate per source under the weights ("" for a source without candidates)."""
        return pick(nbests, self.features(sources, nbests), [self.weights[f] for f in FEATURES])

    def save(self, path: str | Path, **extra) -> dict:
        """Write the weights file; returns what it holds."""
        saved = {"weights": self.weights, "nbest": self.nbest, "lenpen": self.lenpen, **self.paths, **extra}
        Path(path).write_text(json.dumps(saved, indent=2) + "\n")
        return saved


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
    weights = dict(PLAIN)

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
    try:
        data = json.loads(Path(path).read_text())
        weights = {f: float(data["weights"][f]) for f in FEATURES}
        nbest, lenpen = int(data["nbest"]), float(data["lenpen"])
        models = [data.get("reverse"), data.get("lm")]
        assert all(m is None or isinstance(m, str) for m in models)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise UserError(f"'{path}' is not a reranking file written by textgen rerank ({type(exc).__name__})") from None
    if not (2 <= nbest <= 1024 and all(map(math.isfinite, [*weights.values(), lenpen]))):
        raise UserError(f"'{path}' holds nbest {nbest}, lenpen {lenpen} and weights {weights}: rerun textgen rerank")
    return Reranker.from_paths(weights, nbest, lenpen, *models, device)


def corpus_metric(metric: str, references: list[str]):
    """hyps -> the corpus `metric` against one reference stream, unrounded: BLEU as sacrebleu's corpus score
    from the sums of per-output n-gram statistics, ROUGE as the mean of per-output F1s; either computed once per
    distinct (source, output), so that the weight search re-tokenises nothing."""
    from sacrebleu.metrics import BLEU

    from textgen.metrics import best_reference_f1, check_metrics

    check_metrics([metric])
    if metric.startswith("bleu4"):
        # effective_order changes a sentence's score, not its counts; set, it silences sacrebleu's warning
        sentence = BLEU(lowercase=metric == "bleu4-lc", effective_order=True)
        stats: dict[tuple[int, str], tuple[list[int], list[int], int, int]] = {}

        def bleu(hyps: list[str]) -> float:
            matches, totals, out_len, ref_len = [0] * 4, [0] * 4, 0, 0
            for i, h in enumerate(hyps):
                if (i, h) not in stats:
                    s = sentence.sentence_score(h, [references[i]])
                    stats[i, h] = (s.counts, s.totals, s.sys_len, s.ref_len)
                m, t, o, r = stats[i, h]
                matches, totals = [a + b for a, b in zip(matches, m)], [a + b for a, b in zip(totals, t)]
                out_len, ref_len = out_len + o, ref_len + r
            return BLEU.compute_bleu(matches, totals, out_len, ref_len, smooth_method="exp").score

        return bleu
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
    data: str | None = None,
    batch_size: int | None = None,
    device: str = "auto",
) -> dict:
    """`textgen rerank`: decode the validation split with the forward checkpoint(s) into n-best lists (beam =
    nbest, the recipe's lenpen), compute the features, tune the weights of those whose model is given (and
    length), and write them to `output`; returns what the file holds."""
    from textgen.device import resolve_device
    from textgen.evaluate import open_split
    from textgen.metrics import check_metrics
    from textgen.paths import output_file

    output = output_file(output, "-o", "rerank.json")
    check_metrics([metric])
    if not 2 <= nbest <= 1024:
        raise UserError(f"--nbest must be from 2 to 1024 (candidates to rerank), got {nbest}")
    s = open_split(ckpts, data, "valid", resolve_device(device), nbest=nbest, beam=nbest, batch_size=batch_size)
    reranker = Reranker.from_paths(PLAIN, nbest, s.cfg.lenpen, reverse, lm, device)
    nbests = [d.nbest for d in s.decode()]
    features = reranker.features(s.part.sources, nbests)
    score = corpus_metric(metric, s.references()[0])
    plain = score(pick(nbests, features, [PLAIN[f] for f in FEATURES]))
    active = [f for f in ("reverse", "lm") if reranker.paths[f]] + ["length"]
    reranker.weights, tuned = tune(nbests, features, score, active)
    summary = {
        "checkpoints": [str(Path(c).resolve()) for c in ckpts],
        "metric": metric,
        f"valid_{metric}_beam{nbest}": round(plain, 2),
        f"valid_{metric}_reranked": round(tuned, 2),
    }
    return reranker.save(output, **summary)
