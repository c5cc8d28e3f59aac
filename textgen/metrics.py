"""Corpus metrics (BLEU-4 via sacrebleu, ROUGE-1/2/L via rouge-score) and sentence-level rewards.

Pure functions, no global scorers; each returns plain numbers so results files stay simple.
"""

from __future__ import annotations

from functools import lru_cache

from textgen.errors import UserError

_detokenize_warned = False  # sacrebleu's "forgot to detokenize" warning, once per process (`bleu4`)


def bleu4(hyps: list[str], refs: list[list[str]], lowercase: bool = False) -> tuple[float, str]:
    """Corpus BLEU-4 (sacrebleu defaults: 13a tokenizer, exp smoothing); refs is a list of reference streams.

    sacrebleu warns (3 lines) when >= 100 outputs end in " .", as tokenized text does; on a tokenized corpus
    such as multi30k-tok, scored as tokens on purpose, it would repeat at every validation. So bleu4 shows it
    once per process, for whichever corpus first trips it; the paired tests' BLEU (`sacrebleu_metric`) keeps
    sacrebleu's own behaviour and may show it again."""
    global _detokenize_warned
    from sacrebleu.metrics import BLEU

    metric = BLEU(lowercase=lowercase, force=_detokenize_warned)
    _detokenize_warned = _detokenize_warned or sum(h.endswith(" .") for h in hyps) >= 100
    score = metric.corpus_score(hyps, refs)
    return score.score, str(metric.get_signature())


@lru_cache(maxsize=4)
def _rouge_scorer(kinds: tuple[str, ...]):
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(list(kinds), use_stemmer=True)


def best_reference_f1(hyp: str, refs: list[str], kinds: tuple[str, ...]) -> dict[str, float]:
    """One hypothesis's ROUGE F1 per kind, the best over its references (0 with none): the per-example value
    that `rouge` averages and that the paired tests resample (`rouge_metric`)."""
    per_ref = [_rouge_scorer(kinds).score(ref, hyp) for ref in refs]
    return {kind: max((s[kind].fmeasure for s in per_ref), default=0.0) for kind in kinds}


def rouge(hyps: list[str], refs: list[list[str]], kinds=("rouge1", "rouge2", "rougeL")) -> dict[str, float]:
    """Mean ROUGE F1 x100 (Porter stemmer on); with several reference streams, the best per example."""
    totals = dict.fromkeys(kinds, 0.0)
    for i, hyp in enumerate(hyps):
        for kind, f1 in best_reference_f1(hyp, [stream[i] for stream in refs], tuple(kinds)).items():
            totals[kind] += f1
    return {kind: 100.0 * v / max(1, len(hyps)) for kind, v in totals.items()}


METRICS = {
    "bleu4": "corpus BLEU-4 (sacrebleu, 13a, cased)",
    "bleu4-lc": "corpus BLEU-4 (sacrebleu, 13a, lowercased)",
    "rouge1": "ROUGE-1 F1 x100 (rouge-score, stemmer)",
    "rouge2": "ROUGE-2 F1 x100 (rouge-score, stemmer)",
    "rougeL": "ROUGE-L F1 x100 (rouge-score, stemmer)",
}


def check_metrics(names: list[str]) -> None:
    for name in names:
        if name not in METRICS:
            raise UserError(f"unknown metric '{name}': choose from {', '.join(METRICS)}")


def score(names: list[str], hyps: list[str], refs: list[list[str]]) -> tuple[dict[str, float], dict[str, str]]:
    """Compute the named metrics; returns values and, for BLEU, sacrebleu's signature."""
    check_metrics(names)
    for stream in refs:
        if len(stream) != len(hyps):
            raise UserError(f"{len(hyps)} hypotheses but {len(stream)} references: the files must be line-aligned")
    values, signatures = {}, {}
    for name in names:
        if name.startswith("bleu4"):
            values[name], signatures[name] = bleu4(hyps, refs, lowercase=name == "bleu4-lc")
    wanted = [n for n in names if n.startswith("rouge")]
    if wanted:
        values.update(rouge(hyps, refs, tuple(wanted)))
    return {k: round(v, 2) for k, v in values.items()}, signatures


# ---- sentence-level rewards for REINFORCE / MIXER / SCST (pure functions of hypothesis and reference) ----


@lru_cache(maxsize=1)
def _sentence_bleu_metric():
    from sacrebleu.metrics import BLEU

    # +1 smoothing of the n-gram precisions, as Ranzato et al. use for the training reward
    return BLEU(smooth_method="add-k", smooth_value=1, effective_order=True)


def sentence_bleu(hyp: str, ref: str) -> float:
    """Sentence BLEU-4 in [0, 1], add-1 smoothed (sacrebleu's sentence_bleu with add-k, k=1)."""
    if not hyp.strip():
        return 0.0
    return _sentence_bleu_metric().sentence_score(hyp, [ref]).score / 100.0


@lru_cache(maxsize=1)
def _sentence_chrf_metric():
    from sacrebleu.metrics import CHRF

    return CHRF()  # sacrebleu's defaults: character 6-grams, beta 2, no word n-grams (chrF2)


def sentence_chrf(hyp: str, ref: str) -> float:
    """Sentence chrF2 in [0, 1] (sacrebleu's CHRF sentence_score)."""
    if not hyp.strip():
        return 0.0
    return _sentence_chrf_metric().sentence_score(hyp, [ref]).score / 100.0


def sacrebleu_metric(name: str):
    """A fresh sacrebleu Metric for the paired tests: sacrebleu's BLEU, or ROUGE (`rouge_metric`)."""
    check_metrics([name])
    if name.startswith("rouge"):
        return rouge_metric(name)
    from sacrebleu.metrics import BLEU

    return BLEU(lowercase=name == "bleu4-lc")


def rouge_metric(kind: str):
    """ROUGE from rouge-score behind sacrebleu's Metric interface, so that sacrebleu's paired bootstrap and
    approximate randomization resample it exactly as they resample BLEU. A segment's statistics are
    [its best-reference F1, 1]: their column sums give `rouge`'s corpus value, the mean F1 x100.

    Scores are rounded to 1e-9: F1 values are floats, and sacrebleu's AR counts shuffles whose difference is
    strictly larger than the observed one, which, summed in another order, would differ from it by ~1e-14
    (BLEU's integer counts tie exactly; so do these, rounded)."""
    from importlib.metadata import version

    kinds = [name for name in METRICS if name.startswith("rouge")]
    if kind not in kinds:
        raise UserError(f"unknown ROUGE kind '{kind}': choose from {', '.join(kinds)}")

    from sacrebleu.metrics.base import Metric, Score, Signature

    class RougeSignature(Signature):
        def __init__(self, args: dict):
            super().__init__(args)
            self._abbr.update({"kind": "k", "stemmer": "st", "impl": "i"})
            self.info.update({"kind": args["kind"], "stemmer": True, "impl": f"rouge-score-{version('rouge-score')}"})

    class Rouge(Metric):
        _SIGNATURE_TYPE = RougeSignature

        def __init__(self):
            super().__init__()
            self.kind = kind

        def _preprocess_segment(self, sent: str) -> str:
            return sent  # rouge-score tokenizes and stems on its own

        def _extract_reference_info(self, refs) -> dict:
            return {"refs": refs}

        def _compute_segment_statistics(self, hypothesis: str, ref_kwargs: dict) -> list[float]:
            return [best_reference_f1(hypothesis, ref_kwargs["refs"], (kind,))[kind], 1.0]

        def _compute_score_from_stats(self, stats) -> Score:
            return Score(kind, round(float(100.0 * stats[0] / max(1.0, stats[1])), 9))

        def _aggregate_and_compute(self, stats) -> Score:
            return self._compute_score_from_stats([sum(column) for column in zip(*stats)])

    return Rouge()


def sentence_rouge(hyp: str, ref: str, kind: str = "rouge2") -> float:
    """ROUGE-N/L F1 in [0, 1] (stemmer on)."""
    if not hyp.strip():
        return 0.0
    return _rouge_scorer((kind,)).score(ref, hyp)[kind].fmeasure


def rouge_mix(hyp: str, ref: str) -> float:
    """Denser summarisation reward: mean of ROUGE-1 and ROUGE-2 F1 (a unigram match still pays)."""
    if not hyp.strip():
        return 0.0
    scores = _rouge_scorer(("rouge1", "rouge2")).score(ref, hyp)
    return 0.5 * (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure)


REWARDS = {
    "bleu": sentence_bleu,
    "rouge2": lambda h, r: sentence_rouge(h, r, "rouge2"),
    "rouge1": lambda h, r: sentence_rouge(h, r, "rouge1"),
    "rouge-mix": rouge_mix,
}
