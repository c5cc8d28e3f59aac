"""Batched decoding of encoded sources: length-sorted batches through greedy, sampling or beam search.

What every seq2seq decode runs on (the dispatch in decode/dispatch.py, MBR's candidates, validation during
training): ids in, per source its n-best token lists and scores out, in input order."""

from __future__ import annotations

from collections.abc import Callable

import torch

from textgen.config import DecodeConfig
from textgen.data.seqbatch import collate
from textgen.decode.sampling import repeat_counts, source_keys
from textgen.decode.search import Hypotheses, beam_search, greedy_or_sample
from textgen.precision import autocast

Results = list[tuple[list[list[int]], list[float]]]  # per source: (n-best token lists, their scores)


def batches_in_order(sources: list[list[int]], batch_size: int) -> list[list[int]]:
    """Length-sorted groups of `batch_size` sources for decoding (results go back to input order)."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def decode_ids(
    model,
    sources: list[list[int]],
    cfg: DecodeConfig,
    beam: int | None = None,
    sample: bool = False,
    temperature: float = 1.0,
    seed: int | None = None,
    top_p: float = 1.0,
    epsilon: float = 0.0,
    num_samples: int = 1,
    keys: torch.Tensor | None = None,
    advance: Callable[[int], None] | None = None,
) -> Results:
    """(n-best token lists, scores) per source, in input order (beam None: cfg.beam); batches are
    length-sorted; `advance(n)` is called after each batch with its n sources (a progress bar's).

    Sampling filters by `epsilon` and `top_p` (decode/sampling.py) and draws `num_samples` outputs per source
    (then a batch holds cfg.batch_size sources, each encoded once, on batch_size * num_samples rows). Sample j
    of a source draws from a key of its own (keyed_uniforms): keys[j], shared by every source (MBR), or else
    one derived from (seed, the source, j) (source_keys; seed None: one drawn from torch's global generator),
    so a source samples the same output alone or in any batch (a repeated source draws anew for each copy)."""
    model.eval()
    beam = cfg.beam if beam is None else beam
    results: Results = [None] * len(sources)  # type: ignore[list-item]
    device = model_device(model)
    if sample and keys is None and seed is None:
        seed = int(torch.randint(0, 2**63 - 1, ()))
    repeats = repeat_counts(sources) if sample and keys is None else []
    with autocast(cfg.precision, device):
        for ids in batches_in_order(sources, cfg.batch_size):
            b = collate([sources[i] for i in ids], None, ids).to(device)
            if sample or beam == 1:
                drawn = keys
                if sample and keys is None:
                    drawn = source_keys(seed, [sources[i] for i in ids], num_samples, device, [repeats[i] for i in ids])
                hyps: Hypotheses = greedy_or_sample(
                    model,
                    b.src,
                    b.src_lens,
                    cfg.max_len_a,
                    cfg.max_len_b,
                    temperature if sample else 0.0,
                    top_p=top_p,
                    epsilon=epsilon,
                    keys=drawn,
                    num_samples=num_samples,
                    no_repeat_ngram=cfg.no_repeat_ngram,
                )
            else:
                hyps = beam_search(
                    model,
                    b.src,
                    b.src_lens,
                    beam,
                    cfg.nbest,
                    cfg.lenpen,
                    cfg.max_len_a,
                    cfg.max_len_b,
                    cfg.no_repeat_ngram,
                )
            for i, toks, scores in zip(ids, hyps.tokens, hyps.scores):
                results[i] = (toks, scores)
            if advance:
                advance(len(ids))
    return results
