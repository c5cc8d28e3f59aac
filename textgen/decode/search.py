"""Seq2seq decoding over the step protocol: greedy / sampling, and batched beam search on flat B*K rows."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from textgen.data.seqvocab import BOS, EOS, PAD
from textgen.decode.sampling import keyed_uniforms, next_token
from textgen.decode.settings import MAX_OUTPUT_TOKENS


@dataclass(frozen=True)
class Hypotheses:
    tokens: list[list[list[int]]]  # per sentence, n-best token lists (EOS stripped)
    scores: list[list[float]]  # per sentence, their scores (length-normalised for beam)


def max_lengths(src_lens: torch.Tensor, a: float, b: int, cap: int = MAX_OUTPUT_TOKENS) -> torch.Tensor:
    """Per-sentence length limit a*|src| + b (at least 1), counting the EOS."""
    return (a * src_lens.float() + b).floor().long().clamp(1, cap)


@torch.no_grad()
def greedy_or_sample(
    model,
    src,
    src_lens,
    max_len_a=1.5,
    max_len_b=10,
    temperature=0.0,
    top_k=0,
    top_p=1.0,
    generator=None,
    epsilon=0.0,
    keys=None,
    num_samples=1,
    no_repeat_ngram=0,
) -> Hypotheses:
    """Temperature 0: greedy. Rows leave the batch at their EOS or length limit; scores are summed log-probs.

    num_samples > 1: each source is encoded once and decoded on num_samples rows (sentence b owns rows
    b*n..b*n+n-1), giving n outputs per sentence in drawing order. `keys` int64, (num_samples,) shared by every
    sentence (MBR's candidates) or (B, num_samples) one row per sentence (source_keys): output j of sentence b
    draws from keyed_uniforms(its key j, step) instead of `generator`, so what a sentence samples depends on
    its source and its keys alone, not on the other rows of the batch."""
    B, device = src.size(0), src.device
    state = model.encode(src, src_lens)
    if num_samples > 1:  # encode once, then copy the encoder state to the sentence's n rows
        expand = torch.arange(B, device=device).repeat_interleave(num_samples)
        state, src_lens = model.reorder_state(state, expand), src_lens.index_select(0, expand)
    sentences, B = B, B * num_samples
    if keys is not None:
        keys = keys.to(device)
        keys = keys.repeat(sentences) if keys.dim() == 1 else keys.reshape(-1)  # (B,): row b*n+j gets key j of b
    limit = max_lengths(src_lens, max_len_a, max_len_b)
    T = int(limit.max())
    active = torch.arange(B, device=device)  # rows still decoding
    prev = torch.full((B,), BOS, dtype=torch.long, device=device)
    out = torch.full((B, T), PAD, dtype=torch.long, device=device)
    scores = torch.zeros(B, device=device)
    for t in range(T):
        logits, state = model.step(prev, state)  # (b, V) for the active rows
        logp = allowed_log_probs(logits, t + 1 >= limit[active])
        if no_repeat_ngram:  # as beam search does, so greedy, sampled and MBR outputs follow the recipe too
            logp = _block_repeated_ngrams(logp, out[active, :t], no_repeat_ngram)
        u = None if keys is None or temperature == 0 else keyed_uniforms(keys[active], t)
        tok = next_token(logp, temperature, top_k, top_p, generator, epsilon, u)  # (b,)
        out[active, t] = tok
        scores[active] += logp.gather(1, tok[:, None]).squeeze(1)
        going = tok != EOS
        if not bool(going.any()):
            break
        if not bool(going.all()):  # finished rows leave the batch: no more work spent on them
            keep = going.nonzero().squeeze(1)
            active, tok = active[keep], tok[keep]
            state = model.reorder_state(state, keep)
        prev = tok
    rows = out.tolist()  # one host sync at the end
    flat = [[t for t in row[: row.index(EOS) if EOS in row else len(row)] if t != PAD] for row in rows]
    n, flat_scores = num_samples, scores.tolist()
    return Hypotheses(
        [flat[b * n : (b + 1) * n] for b in range(sentences)],
        [flat_scores[b * n : (b + 1) * n] for b in range(sentences)],
    )


def _ban(x: torch.Tensor, at_limit: torch.Tensor, inplace: bool) -> torch.Tensor:
    """PAD and BOS to -inf everywhere; every token but EOS for rows at their length limit."""
    neg = torch.finfo(torch.float32).min
    never = torch.tensor([PAD, BOS], device=x.device)
    x = x.index_fill_(1, never, neg) if inplace else x.index_fill(1, never, neg)
    if bool(at_limit.any()):  # the common case builds no (B, V) mask at all
        not_eos = torch.ones(x.size(1), dtype=torch.bool, device=x.device)
        not_eos[EOS] = False
        mask = at_limit.unsqueeze(1) & not_eos
        x = x.masked_fill_(mask, neg) if inplace else x.masked_fill(mask, neg)
    return x


def allowed_log_probs(logits: torch.Tensor, at_limit: torch.Tensor, renormalise: bool = False) -> torch.Tensor:
    """Log-probabilities with PAD and BOS forbidden, and only EOS allowed for rows at their length limit.

    Search (renormalise=False) keeps the model's own log-probs, as fairseq does: a hypothesis forced to
    stop at the limit pays the model's log p(EOS). Rollouts (renormalise=True) mask before the softmax,
    giving the log-probs of the policy actually sampled from, which REINFORCE's gradient needs (rollouts
    pass logits already divided by their sampling temperature).
    Out of place whenever autograd records, so rollouts can backpropagate through it.
    """
    if renormalise:
        return _ban(logits.float(), at_limit, inplace=False).log_softmax(-1)
    logp = logits.float().log_softmax(-1)
    return _ban(logp, at_limit, inplace=not logp.requires_grad)


def candidate_scores(logits: torch.Tensor, at_limit: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """prefix[b] + log p(v) for every row b and token v, banned as in allowed_log_probs (no gradient).

    allowed_log_probs plus an add, all in place on one fresh (rows, V) tensor: beam search's hot spot
    next to the output projection. (torch's logsumexp is a slower composite on CPU than log_softmax.)"""
    return _ban(logits.float().log_softmax(-1), at_limit, inplace=True).add_(prefix.unsqueeze(1))


def _block_repeated_ngrams(logp: torch.Tensor, hist: torch.Tensor, n: int) -> torch.Tensor:
    """Forbid tokens that would repeat an n-gram already in each row's history (BK, t)."""
    t = hist.size(1)
    if t < n - 1 or n < 1:
        return logp
    if n == 1:
        return logp.scatter(1, hist, torch.finfo(logp.dtype).min)
    prefix = hist[:, t - n + 1 :]  # (BK, n-1) the current suffix
    windows = hist.unfold(1, n - 1, 1)[:, : t - n + 1]  # (BK, t-n+1, n-1) earlier (n-1)-grams
    match = (windows == prefix.unsqueeze(1)).all(-1)  # (BK, t-n+1)
    following = hist[:, n - 1 :]  # (BK, t-n+1) token after each window
    V = logp.size(1)
    target = following.masked_fill(~match, V)  # unmatched windows write into a spare column
    banned = torch.zeros(logp.size(0), V + 1, dtype=torch.bool, device=logp.device).scatter_(1, target, True)[:, :V]
    return logp.masked_fill(banned, torch.finfo(logp.dtype).min)


@torch.no_grad()
def beam_search(
    model, src, src_lens, beam=5, nbest=1, lenpen=1.0, max_len_a=1.5, max_len_b=10, no_repeat_ngram=0
) -> Hypotheses:
    """Batched beam search; finished hypotheses scored as sum log p / length**lenpen.

    Rows are flat (B*K): sentence b owns rows b*K..b*K+K-1. At step 0 only beam 0 is live; the top
    2K candidates are taken so EOS candidates cannot starve the beam (and the first step runs once per
    sentence, not K times); a sentence is done once it has
    K finished hypotheses, and its rows no longer affect any other sentence.
    """
    B, K, device = src.size(0), beam, src.device
    nbest = min(nbest, K)
    neg = torch.finfo(torch.float32).min
    state = model.encode(src, src_lens)
    limit = max_lengths(src_lens, max_len_a, max_len_b)  # (B,)
    T = int(limit.max())
    fin_scores = torch.full((B, K), neg, device=device)  # finished hypotheses of every sentence, length-normalised
    fin_raw = torch.full((B, K), neg, device=device)
    fin_tokens = torch.full((B, K, T), PAD, dtype=torch.long, device=device)
    # the active sentences (finished ones leave the batch); rows of active sentence i are i*K..i*K+K-1
    sent = torch.arange(B, device=device)
    scores = torch.full((B, K), neg, device=device)
    scores[:, 0] = 0.0  # only beam 0 is live at step 0
    hist = torch.zeros(B * K, 0, dtype=torch.long, device=device)
    prev = torch.full((B * K,), BOS, dtype=torch.long, device=device)
    for t in range(T):
        Bc = sent.numel()
        offsets = (torch.arange(Bc, device=device) * K).unsqueeze(1)  # (Bc, 1)
        if t == 0:  # all K beams of a sentence are the same BOS: step once per sentence, then copy
            logits, state = model.step(prev[:B], state)
            expand = torch.arange(B, device=device).repeat_interleave(K)
            logits, state = logits.index_select(0, expand), model.reorder_state(state, expand)
        else:
            logits, state = model.step(prev, state)  # (Bc*K, V)
        cand = candidate_scores(logits, (t + 1 >= limit[sent]).repeat_interleave(K), scores.view(Bc * K))
        V = cand.size(1)
        if no_repeat_ngram:
            cand = _block_repeated_ngrams(cand, hist, no_repeat_ngram)
        cand = cand.view(Bc, K * V)
        top, idx = cand.topk(2 * K, dim=1)  # (Bc, 2K)
        src_beam, tok = idx // V, idx % V
        rows = (offsets + src_beam).view(-1)  # (Bc*2K,) source row of each candidate
        is_eos = (tok == EOS) & (top > neg / 2)  # finished candidates: EOS among the first K ranks
        is_eos[:, K:] = False
        if bool(is_eos.any()):
            seq = torch.cat(
                [hist.index_select(0, rows), torch.full((Bc * 2 * K, 1), EOS, device=device)], 1
            )  # (Bc*2K, t+1)
            seq = torch.nn.functional.pad(seq, (0, T - t - 1), value=PAD).view(Bc, 2 * K, T)
            norm = top / float(t + 1) ** lenpen
            all_scores = torch.cat([fin_scores[sent], torch.where(is_eos, norm, neg)], 1)  # (Bc, 3K)
            all_raw = torch.cat([fin_raw[sent], torch.where(is_eos, top, neg)], 1)
            all_tokens = torch.cat([fin_tokens[sent], seq], 1)  # (Bc, 3K, T)
            best, keep = all_scores.topk(K, dim=1)
            fin_scores[sent] = best
            fin_raw[sent] = all_raw.gather(1, keep)
            fin_tokens[sent] = all_tokens.gather(1, keep.unsqueeze(-1).expand(Bc, K, T))
        finished = ((fin_scores[sent] > neg / 2).sum(1) >= K) | (t + 1 >= limit[sent])  # (Bc,)
        if bool(finished.all()):
            break
        # live hypotheses: the best K non-EOS candidates
        live_score, order = torch.where(tok == EOS, neg, top).topk(K, dim=1)  # (Bc, K)
        chosen = (offsets * 2 + order).view(-1)  # index into the Bc*2K candidates
        rows, tok, scores = rows[chosen], tok.view(-1)[chosen], live_score
        shrink = bool(finished.any())
        if shrink:  # finished sentences leave the batch; the others are untouched
            keep = (~finished).nonzero().squeeze(1)
            keep_rows = (keep.unsqueeze(1) * K + torch.arange(K, device=device)).view(-1)
            sent, scores, rows, tok = sent[keep], scores[keep], rows[keep_rows], tok[keep_rows]
        hist = torch.cat([hist.index_select(0, rows), tok.unsqueeze(1)], 1)
        # rows only move within their sentence unless a sentence left: then the source memory must follow
        state = model.reorder_state(state, rows, keep_source=not shrink)
        prev = tok
    best = fin_scores[:, :nbest].tolist()
    toks = fin_tokens[:, :nbest].tolist()
    tokens = [
        [[x for x in hyp if x not in (PAD, EOS)] for hyp, s in zip(toks[b], best[b]) if s > neg / 2] for b in range(B)
    ]
    return Hypotheses(tokens, [[s for s in row if s > neg / 2] for row in best])
