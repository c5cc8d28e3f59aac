"""Seq2seq decoding over the step protocol: greedy / sampling, and batched beam search on flat B*K rows."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from textgen.data.seqvocab import BOS, EOS, PAD
from textgen.decode.sampling import next_token


@dataclass(frozen=True)
class Hypotheses:
    tokens: list[list[list[int]]]  # per sentence, n-best token lists (EOS stripped)
    scores: list[list[float]]  # per sentence, their scores (length-normalised for beam)


def max_lengths(src_lens: torch.Tensor, a: float, b: int, cap: int = 512) -> torch.Tensor:
    """Per-sentence length limit a*|src| + b (at least 1), counting the EOS."""
    return (a * src_lens.float() + b).floor().long().clamp(1, cap)


@torch.no_grad()
def greedy_or_sample(
    model, src, src_lens, max_len_a=1.5, max_len_b=10, temperature=0.0, top_k=0, top_p=1.0, generator=None
) -> Hypotheses:
    """Temperature 0: greedy. Each row stops at its EOS or its length limit; scores are summed log-probs."""
    B = src.size(0)
    state = model.encode(src, src_lens)
    limit = max_lengths(src_lens, max_len_a, max_len_b)
    prev = torch.full((B,), BOS, dtype=torch.long)
    alive = torch.ones(B, dtype=torch.bool)
    scores = torch.zeros(B)
    out = []
    for t in range(int(limit.max())):
        logits, state = model.step(prev, state)  # (B, V)
        logp = allowed_log_probs(logits, t + 1 >= limit)
        tok = next_token(logp, temperature, top_k, top_p, generator)  # (B,)
        tok = torch.where(alive, tok, torch.full_like(tok, PAD))
        scores += torch.where(alive, logp.gather(1, tok[:, None]).squeeze(1), torch.tensor(0.0))
        out.append(tok)
        alive &= tok != EOS
        prev = tok
        if not bool(alive.any()):
            break
    rows = torch.stack(out, 1).tolist()  # one host sync at the end
    tokens = [[[t for t in row[: row.index(EOS) if EOS in row else len(row)] if t != PAD]] for row in rows]
    return Hypotheses(tokens, [[s] for s in scores.tolist()])


def allowed_log_probs(logits: torch.Tensor, at_limit: torch.Tensor) -> torch.Tensor:
    """Log-probabilities renormalised over what may be emitted: never PAD or BOS; only EOS at the limit.

    Masking before the softmax makes these the log-probs of the policy actually sampled from, which
    REINFORCE's gradient needs; it is out of place so rollouts can backpropagate through it.
    """
    vocab = torch.arange(logits.size(1))
    banned = (vocab == PAD) | (vocab == BOS) | (at_limit.unsqueeze(1) & (vocab != EOS))  # (B, V)
    return logits.float().masked_fill(banned, torch.finfo(torch.float32).min).log_softmax(-1)


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
    banned = torch.zeros(logp.size(0), V + 1, dtype=torch.bool).scatter_(1, target, True)[:, :V]
    return logp.masked_fill(banned, torch.finfo(logp.dtype).min)


@torch.no_grad()
def beam_search(
    model, src, src_lens, beam=5, nbest=1, lenpen=1.0, max_len_a=1.5, max_len_b=10, no_repeat_ngram=0
) -> Hypotheses:
    """Batched beam search; finished hypotheses scored as sum log p / length**lenpen.

    Rows are flat (B*K): sentence b owns rows b*K..b*K+K-1. At step 0 only beam 0 is live; the top
    2K candidates are taken so EOS candidates cannot starve the beam; a sentence is done once it has
    K finished hypotheses, and its rows no longer affect any other sentence.
    """
    B, K = src.size(0), beam
    nbest = min(nbest, K)
    neg = torch.finfo(torch.float32).min
    state = model.encode(src, src_lens)
    state = model.reorder_state(state, torch.arange(B).repeat_interleave(K))
    limit = max_lengths(src_lens, max_len_a, max_len_b)  # (B,)
    T = int(limit.max())
    scores = torch.full((B, K), neg)
    scores[:, 0] = 0.0  # only beam 0 is live at step 0
    hist = torch.zeros(B * K, 0, dtype=torch.long)
    prev = torch.full((B * K,), BOS, dtype=torch.long)
    fin_scores = torch.full((B, K), neg)  # finished, length-normalised
    fin_raw = torch.full((B, K), neg)
    fin_tokens = torch.full((B, K, T), PAD, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    offsets = (torch.arange(B) * K).unsqueeze(1)  # (B, 1)
    for t in range(T):
        logits, state = model.step(prev, state)  # (BK, V)
        logp = allowed_log_probs(logits, (t + 1 >= limit).repeat_interleave(K))  # (BK, V)
        V = logp.size(1)
        if no_repeat_ngram:
            logp = _block_repeated_ngrams(logp, hist, no_repeat_ngram)
        cand = (scores.view(B * K, 1) + logp).view(B, K * V)  # (B, K*V)
        top, idx = cand.topk(2 * K, dim=1)  # (B, 2K)
        src_beam, tok = idx // V, idx % V
        rows = (offsets + src_beam).view(-1)  # (B*2K,) flat source rows
        # finished candidates: EOS among the first K ranks, for sentences not yet done
        is_eos = (tok == EOS) & (top > neg / 2)
        is_eos[:, K:] = False
        is_eos &= ~done.unsqueeze(1)
        norm = top / float(t + 1) ** lenpen
        new_fin = torch.where(is_eos, norm, torch.tensor(neg))  # (B, 2K)
        if bool(is_eos.any()):
            seq = torch.cat([hist.index_select(0, rows), torch.full((B * 2 * K, 1), EOS)], 1)  # (B*2K, t+1)
            seq = torch.nn.functional.pad(seq, (0, T - t - 1), value=PAD).view(B, 2 * K, T)
            all_scores = torch.cat([fin_scores, new_fin], 1)  # (B, 3K)
            all_raw = torch.cat([fin_raw, torch.where(is_eos, top, torch.tensor(neg))], 1)
            all_tokens = torch.cat([fin_tokens, seq], 1)  # (B, 3K, T)
            fin_scores, keep = all_scores.topk(K, dim=1)
            fin_raw = all_raw.gather(1, keep)
            fin_tokens = all_tokens.gather(1, keep.unsqueeze(-1).expand(B, K, T))
        done |= (fin_scores > neg / 2).sum(1) >= K
        if bool(done.all()):
            break
        # live hypotheses: the best K non-EOS candidates
        live_score = torch.where(tok == EOS, torch.tensor(neg), top)
        live_score, order = live_score.topk(K, dim=1)  # (B, K)
        chosen = (offsets * 2 + order).view(-1)  # index into the B*2K candidates
        rows, tok = rows[chosen], tok.view(-1)[chosen]
        scores = live_score
        hist = torch.cat([hist.index_select(0, rows), tok.unsqueeze(1)], 1)
        state = model.reorder_state(state, rows)
        prev = tok
    best = fin_scores[:, :nbest].tolist()
    toks = fin_tokens[:, :nbest].tolist()
    tokens = [[[x for x in hyp if x not in (PAD, EOS)] for hyp, s in zip(toks[b], best[b]) if s > neg / 2]
              for b in range(B)]
    return Hypotheses(tokens, [[s for s in row if s > neg / 2] for row in best])
