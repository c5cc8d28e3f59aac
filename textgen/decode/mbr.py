"""Minimum Bayes risk (MBR) decoding (Eikema & Aziz 2020; Freitag et al. 2022): sample N candidates per source,
output the one with the highest expected utility against the others. Its settings are a recipe's [decode.mbr]
table (config.MbrConfig: samples N, sampling, utility, epsilon, top_p, beam, seed) and decode.temperature.

Candidates: N draws per source by ancestral sampling, epsilon sampling (tokens with p < epsilon dropped, the rest
renormalised; Freitag et al. 2023 use epsilon 0.02) or top-p sampling, at decode.temperature (1: the model's own
distribution). All sources go through the batched sampler together: a batch holds cfg.batch_size sources, each
encoded once and decoded on N rows, so 64 sources x N = 32 is 2,048 rows a step, not a loop per sentence.
Sample j of every source draws its uniforms from a key derived from (seed, j) alone (keyed_uniforms), so a
source gets the same candidates, hence the same output, alone or in any batch, at any batch size (as long as
the model computes the same probabilities for a row in either batch: tests/test_mbr.py checks it on the CPU).

Selection (`mbr_select`): the expected utility of candidate i is its mean utility, as hypothesis, against the
N - 1 OTHER candidates as pseudo-references, duplicates included. Leaving i out of its own references keeps a
candidate from being rewarded for matching itself; keeping duplicates is how sampling frequency enters: a string
drawn k times has k - 1 copies of itself among its references. Identical strings have identical expected
utilities, so each distinct string is scored once: m distinct strings cost m(m - 1) utility calls, plus one
self-utility for each string drawn more than once. Ties go to the earliest candidate.
N = 1 with nothing searched: there are no other candidates to act as references, so the single sample is
returned as it is (its expected utility is nan).
Searched hypotheses (decode.mbr.beam K > 0, `--mbr-beam K`): beam search's K best outputs join the candidates
as hypotheses only (Freitag et al. 2022 mix beam and sampled candidates the same way): each is scored against
all N draws as pseudo-references, an unbiased estimate of the same expected utility, and the draws are scored
as before (a beam output that was also drawn is scored once, as a draw). The beam output is chosen when it
beats every draw in expected utility; ties go to the draw.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from textgen.config import CHOICES, DecodeConfig
from textgen.decode import settings
from textgen.decode.driver import decode_ids, model_device
from textgen.decode.sampling import row_keys
from textgen.errors import UserError
from textgen.metrics import sentence_bleu, sentence_chrf, sentence_rouge

Utility = Callable[[str, str], float]  # (hypothesis, pseudo-reference) -> a score, higher is better

UTILITIES: dict[str, Utility] = {
    "bleu": sentence_bleu,  # sacrebleu sentence BLEU-4, add-1 smoothed (the MIXER reward), in [0, 1]
    "chrf": sentence_chrf,  # sacrebleu chrF2, in [0, 1]
    "rouge1": lambda h, r: sentence_rouge(h, r, "rouge1"),  # rouge-score F1, stemmer on
    "rouge2": lambda h, r: sentence_rouge(h, r, "rouge2"),
    "rougeL": lambda h, r: sentence_rouge(h, r, "rougeL"),
}  # the names: config.CHOICES["decode.mbr.utility"], which a recipe is checked against
SAMPLINGS = CHOICES["decode.mbr.sampling"]


def mbr_select(candidates: list[str], utility: Utility, searched: Sequence[str] = ()) -> tuple[int, list[float]]:
    """The index of the candidate with the highest expected utility, and every candidate's expected utility.

    expected[i] = mean over j != i of utility(candidates[i], candidates[j]); see the module docstring.
    `searched`: further distinct hypotheses that are not draws (beam search's n-best; `select` drops the drawn
    ones), indexed after the draws; each is scored against all n draws, since none of them is its own."""
    n = len(candidates)
    if n == 0:
        raise ValueError("mbr_select needs at least one candidate")
    if n == 1 and not searched:
        return 0, [math.nan]
    distinct: dict[str, int] = {}  # string -> how often it was drawn, in first-drawn order
    for c in candidates:
        distinct[c] = distinct.get(c, 0) + 1
    value: dict[str, float] = {}
    for hyp, copies in distinct.items():
        total = sum(count * utility(hyp, ref) for ref, count in distinct.items() if ref != hyp)
        if copies > 1:
            total += (copies - 1) * utility(hyp, hyp)
        value[hyp] = total / (n - 1) if n > 1 else math.nan
    expected = [value[c] for c in candidates]
    expected += [sum(count * utility(hyp, ref) for ref, count in distinct.items()) / n for hyp in searched]
    best = max(range(len(expected)), key=lambda i: (-math.inf if math.isnan(expected[i]) else expected[i], -i))
    return best, expected


@dataclass(frozen=True)
class MbrChoice:
    text: str  # the chosen candidate
    index: int  # its index among the candidates
    candidates: list[str]  # in drawing order
    expected: list[float]  # each candidate's expected utility


def sampling_filters(sampling: str, epsilon: float, top_p: float) -> tuple[float, float]:
    """(epsilon, top_p) that decode_ids applies for an MBR sampling scheme."""
    return {"ancestral": (0.0, 1.0), "epsilon": (epsilon, 1.0), "top_p": (0.0, top_p)}[sampling]


@torch.no_grad()
def sample_candidates(
    model,
    decode_text: Callable[[list[int]], str],
    sources: list[list[int]],
    cfg: DecodeConfig,
    advance: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """cfg.mbr.samples sampled candidates per encoded source, in drawing order (batched; sample j of a source
    uses key (cfg.mbr.seed, j)), drawn by cfg.mbr.sampling at cfg.temperature."""
    m = cfg.mbr
    eps, p = sampling_filters(m.sampling, m.epsilon, m.top_p)
    results = decode_ids(
        model,
        sources,
        dataclasses.replace(cfg, nbest=1),
        beam=1,
        sample=True,
        temperature=cfg.temperature,
        top_p=p,
        epsilon=eps,
        num_samples=m.samples,
        keys=row_keys(m.seed, m.samples, model_device(model)),
        advance=advance,
    )
    return [[decode_text(t) for t in toks] for toks, _ in results]


def select(
    candidates: list[list[str]],
    utility: str = "bleu",
    searched: list[list[str]] | None = None,
    advance: Callable[[int], None] | None = None,
) -> list[MbrChoice]:
    """Each source's MBR choice among its candidates: the draws, then the searched hypotheses (if given) that
    are not among the draws (a drawn string is scored as a draw, leaving its own copy out)."""
    score = UTILITIES[utility]
    out = []
    for i, cands in enumerate(candidates):
        drawn = set(cands)
        extra = list(dict.fromkeys(h for h in searched[i] if h not in drawn)) if searched else []
        index, expected = mbr_select(cands, score, extra)
        out.append(MbrChoice((cands + extra)[index], index, cands + extra, expected))
        if advance:
            advance(1)
    return out


def searched_candidates(
    model,
    decode_text,
    sources: list[list[int]],
    cfg: DecodeConfig,
    advance: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """Beam search's k = cfg.mbr.beam best outputs per source (beam k), as MBR hypotheses beside the draws."""
    k = cfg.mbr.beam
    results = decode_ids(model, sources, dataclasses.replace(cfg, nbest=k), beam=k, advance=advance)
    return [[decode_text(t) for t in toks] for toks, _ in results]


def mbr_decode(
    model,
    decode_text: Callable[[list[int]], str],
    sources: list[list[int]],
    cfg: DecodeConfig,
    advance: Callable[[int], None] | None = None,
) -> list[MbrChoice]:
    """Sample cfg.mbr.samples candidates per encoded source (batched) and pick each source's MBR candidate by
    cfg.mbr.utility; in input order. cfg.mbr.beam > 0: beam search's that many best outputs are candidates
    too, scored against the draws. `advance(k)` counts progress_total(len(sources), cfg.mbr.beam) items in all:
    each source sampled, searched, chosen."""
    settings.check_decode_config(cfg)
    if cfg.mbr.samples < 1:
        raise UserError("MBR decoding needs candidates: set decode.mbr.samples (--mbr N) to 1 or more")
    drawn = sample_candidates(model, decode_text, sources, cfg, advance)
    searched = searched_candidates(model, decode_text, sources, cfg, advance) if cfg.mbr.beam else None
    return select(drawn, cfg.mbr.utility, searched, advance)


def progress_total(sources: int, beam: int) -> int:
    """The items mbr_decode's `advance` counts: every source is sampled, searched (beam > 0) and chosen."""
    return sources * (3 if beam else 2)
