"""Ranzato et al.'s MIXER reward: sentence BLEU that credits only n-grams holding a sampled token.

MIXER feeds the reference for the first s steps and samples the rest; scoring the whole output with
plain sentence BLEU pays the rollout for the reference prefix it was given. The paper's code counts
only n-grams that contain at least one generated token. We count n-grams over target token ids (as
the paper's code does over word ids) and let sacrebleu combine the counts (add-1 smoothing of the
2..4-gram precisions, brevity penalty over the whole output), so with an empty prefix this is exactly
sacrebleu's add-1 sentence BLEU of the same token sequence.
"""

from __future__ import annotations

from collections import Counter


def _ngrams(tokens: list[int], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sampled_ngram_bleu(prefix: list[int], sample: list[int], reference: list[int], order: int = 4) -> float:
    """BLEU in [0, 1] of prefix + sample against reference, counting only n-grams with a sampled token.

    Matches are clipped as in BLEU: the sampled n-grams earn the clipped matches of the whole output
    minus those the prefix alone already earns, out of the n-grams that the prefix alone does not hold.
    An empty sample (the rollout stopped at once) holds no n-gram: its one choice was EOS, scored as a single
    sampled token is, 1 where the reference ends there and 0 elsewhere. Scoring an early stop by plain BLEU of
    the prefix instead (the brevity penalty alone, 0.89 for 9 of 10 tokens) would pay it more than a wrong
    sampled word (0) on a different scale, and push every MIXER stage towards stopping early.
    """
    from sacrebleu.metrics import BLEU

    if not sample:
        return 1.0 if len(prefix) == len(reference) else 0.0
    hyp = prefix + sample
    correct, total = [], []
    for n in range(1, order + 1):
        ref, full, given = _ngrams(reference, n), _ngrams(hyp, n), _ngrams(prefix, n)
        clipped_full = sum(min(c, ref[g]) for g, c in full.items())
        clipped_given = sum(min(c, ref[g]) for g, c in given.items())
        correct.append(clipped_full - clipped_given)
        total.append(sum(full.values()) - sum(given.values()))
    score = BLEU.compute_bleu(
        correct,
        total,
        len(hyp),
        len(reference),
        smooth_method="add-k",
        smooth_value=1,
        effective_order=True,
        max_ngram_order=order,
    )
    return score.score / 100.0
