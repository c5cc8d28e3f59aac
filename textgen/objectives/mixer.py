"""MIXER (Ranzato et al. 2016, Algorithm 1), pure REINFORCE, and SCST over one shared rollout.

For a batch at XENT length s: target steps t < s are teacher-forced with cross-entropy; from step s
each row samples its own continuation, gets one sequence-level reward R at the end (sentence BLEU or
ROUGE of reference prefix + sample), and every sampled step gets −(R − b_t)·log p(w_t). The baseline
b_t is a linear regressor on the detached decoder state h_t (trained by squared error, its own lr,
no gradient into the RNN) or, for SCST, the reward of the test-time greedy continuation of the same
prefix. The logged parts: loss_xent (per prefix token), loss_reinforce (surrogate per sampled token),
baseline_mse; train_loss is their weighted sum over all tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from textgen.data.seqvocab import PAD
from textgen.decode.generate import Rollout, rollout, strip
from textgen.decode.search import max_lengths
from textgen.errors import UserError
from textgen.metrics import REWARDS
from textgen.objectives.base import Context, Loss
from textgen.objectives.common import check_sample_temperature, output_loss, teacher_forced_loss
from textgen.objectives.schedules import xent_prefix_length
from textgen.sampled_bleu import sampled_ngram_bleu


@dataclass
class Segment:
    """The rows of a batch that are rolled out from step s: where each continuation starts and ends."""

    batch: object  # the Batch
    rows: torch.Tensor  # (R,) rows whose reference goes on past the prefix
    s: int  # teacher-forced prefix length
    state: object  # decoder state after the prefix, for these rows
    prev: torch.Tensor  # (R,) the first input of the continuation (the last prefix token)
    limit: torch.Tensor  # (R,) steps each continuation may take


class PerStepBaseline(nn.Module):
    """One linear regressor per decoder step t (the paper's code), b_t = w_t . h_t + c_t; steps past the
    last share its regressor. Zero-initialised, as the paper's."""

    def __init__(self, hidden: int, steps: int = 256):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(steps, hidden))
        self.bias = nn.Parameter(torch.zeros(steps))

    def forward(self, features: torch.Tensor, first_step: int) -> torch.Tensor:
        L = features.size(1)
        pos = torch.arange(first_step, first_step + L, device=features.device).clamp(max=self.bias.numel() - 1)
        return (features * self.weight[pos]).sum(-1) + self.bias[pos]  # (B, L)


class SequenceLevel(nn.Module):
    """Shared machinery; subclasses choose s(step) and the baseline. Settings: [objective.mixer]."""

    learned_baseline = True  # SCST's baseline is a greedy decode, not a regressor
    log_columns = ("s", "loss_xent", "loss_reinforce", "reward", "reward_nonzero", "baseline_mse")

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.recipe.objective.mixer
        self.temperature = check_sample_temperature(ctx.recipe.objective)
        self.fixed_lr = self.cfg.baseline_lr  # the baseline regressor's, not decayed with the model's
        self.reward_fn = REWARDS.get(self.cfg.reward)  # bleu-sampled scores token ids, not text
        if self.cfg.samples < 1 or (self.cfg.baseline == "loo" and self.cfg.samples < 2):
            raise UserError(
                f'objective.mixer.samples must be >= 1, and >= 2 with baseline = "loo" (the others\' mean '
                f"reward is each sample's baseline), got {self.cfg.samples}"
            )
        if self.learned_baseline and self.cfg.baseline == "learned":
            self.baseline = nn.Linear(ctx.recipe.model.hidden, 1)
            nn.init.zeros_(self.baseline.weight)  # starts at 0, as in the paper's code
            nn.init.zeros_(self.baseline.bias)
        elif self.learned_baseline and self.cfg.baseline == "learned-per-step":
            self.baseline = PerStepBaseline(ctx.recipe.model.hidden)

    def xent_length(self, step: int) -> int:
        raise NotImplementedError

    def rewards(self, batch, rows: torch.Tensor, s: int, sampled: torch.Tensor) -> torch.Tensor:
        """R per row of `sampled`, the continuation of batch row rows[j] after its s reference tokens: the reward
        of (reference prefix + continuation) against the reference. Reference ids come from the batch (no
        per-corpus state); text rewards read the reference text by the batch's training index."""
        out = []
        targets, index = batch.tgt_out[rows].tolist(), batch.index[rows].tolist()
        for target, i, cont in zip(targets, index, sampled.tolist()):
            reference, continuation = strip(target), strip(cont)
            if self.reward_fn is None:
                out.append(sampled_ngram_bleu(reference[:s], continuation, reference))
            else:
                hyp = self.ctx.tgt_vocab.decode(reference[:s] + continuation)
                out.append(self.reward_fn(hyp, self.ctx.reference(i)))
        return torch.tensor(out, device=sampled.device)

    def advantage(self, model, seg: Segment, roll: Rollout, reward: torch.Tensor):
        """(advantage (B, L) with no gradient, baseline loss term, logs): regressor, leave-one-out, or none."""
        if self.cfg.baseline == "none":
            return reward.unsqueeze(1).expand_as(roll.logp), reward.new_zeros(()), {}
        if self.cfg.baseline == "loo":  # Kool et al. 2019: rows are k samples of each source, side by side
            k = self.cfg.samples
            r = reward.view(-1, k)
            others = (r.sum(1, keepdim=True) - r) / (k - 1)  # (R, k): the mean reward of the other samples
            adv = (r - others).view(-1)
            return adv.unsqueeze(1).expand_as(roll.logp), reward.new_zeros(()), {}
        features = roll.features.detach()  # detached input: no gradient into the RNN
        if self.cfg.baseline == "learned-per-step":
            b = self.baseline(features, seg.s)  # (B, L)
        else:
            b = self.baseline(features).squeeze(-1)  # (B, L)
        err = (reward.unsqueeze(1) - b) ** 2 * roll.mask
        adv = (reward.unsqueeze(1) - b).detach()
        return adv, err.sum(), {"baseline_mse": float(err.detach().sum() / roll.mask.sum())}

    def forward(self, model, batch, *, step: int) -> Loss:
        s = self.xent_length(step)
        B = batch.src.size(0)
        smoothing = self.ctx.recipe.train.label_smoothing
        if s >= self.cfg.T:  # the XENT stage: plain teacher forcing over the whole target
            return Loss(teacher_forced_loss(model, batch, smoothing), batch.ntokens, B, {"s": s})
        logs = {"s": s}  # the scheduled stage (a short batch may use a shorter prefix below)
        state = model.encode(batch.src, batch.src_lens)
        s = min(s, batch.tgt_in.size(1))
        feats, state = model.prefix(state, batch.tgt_in[:, :s])  # (B, s, H)
        xent = output_loss(model, feats, batch.tgt_out[:, :s], smoothing)
        n_xent = int((batch.tgt_out[:, :s] != PAD).sum())
        target_len = (batch.tgt_out != PAD).sum(1)  # (B,) including EOS
        rows = (target_len > s).nonzero().squeeze(1)  # rows whose reference goes on past the prefix
        if rows.numel() == 0:
            return Loss(xent, n_xent, B, logs)
        k = self.cfg.samples
        rows = rows.repeat_interleave(k)  # k rollouts per source, side by side
        limit = (
            max_lengths(batch.src_lens[rows], self.ctx.recipe.decode.max_len_a, self.ctx.recipe.decode.max_len_b) - s
        ).clamp(min=1)
        seg = Segment(
            batch,
            rows,
            s,
            model.reorder_state(state, rows),
            batch.tgt_in[rows, s],
            limit,
        )
        roll = rollout(model, seg.state, seg.prev, limit, sample=True, temperature=self.temperature)
        reward = self.rewards(batch, rows, s, roll.tokens)
        adv, baseline_loss, extra = self.advantage(model, seg, roll, reward)
        reinforce = -(adv * roll.logp * roll.mask).sum() / k  # the mean over a source's samples
        w = self.cfg.xent_weight if s > 0 else 0.0
        total = w * xent + (1.0 - w) * reinforce + baseline_loss / k
        n_sampled = round(float(roll.mask.sum()) / k)
        logs.update(
            {
                "reward": float(reward.mean()),
                "reward_nonzero": float((reward > 0).float().mean()),
                "loss_reinforce": float(reinforce.detach()) / max(n_sampled, 1),
                **extra,
            }
        )
        if n_xent:
            logs["loss_xent"] = float(xent.detach()) / n_xent
        return Loss(total, n_xent + n_sampled, B, logs)


class Mixer(SequenceLevel):
    """Algorithm 1: s = T for the XENT epochs, then T − Δ, T − 2Δ, … every N epochs."""

    def xent_length(self, step: int) -> int:
        return xent_prefix_length(self.cfg, self.ctx.epoch(step))


class PureReinforce(SequenceLevel):
    """REINFORCE over the whole sequence from the start (s = 0): the paper's failure case from scratch."""

    log_columns = ("s", "loss_reinforce", "reward", "reward_nonzero", "baseline_mse")  # no prefix, no loss_xent

    def xent_length(self, step: int) -> int:
        return 0


class SelfCritical(Mixer):
    """SCST (Rennie et al. 2017): baseline = reward of the test-time greedy continuation of the same prefix.

    The greedy decode runs with dropout off (eval mode), re-encoding the rows: it is the output a user
    would get, not a noisy dropout decode, and it draws nothing from the RNG stream. It is deterministic, so
    with objective.mixer.samples = k it runs once per source and its reward serves all k samples."""

    learned_baseline = False
    log_columns = ("s", "loss_xent", "loss_reinforce", "reward", "reward_nonzero", "greedy_reward")

    def advantage(self, model, seg: Segment, roll, reward):
        b, k = seg.batch, self.cfg.samples
        sources = seg.rows[::k]  # the rows are k copies of each source, side by side
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                state = model.encode(b.src[sources], b.src_lens[sources])
                _, state = model.prefix(state, b.tgt_in[sources, : seg.s])
                greedy = rollout(model, state, seg.prev[::k], seg.limit[::k], sample=False)
        finally:
            model.train(was_training)
        base = self.rewards(b, sources, seg.s, greedy.tokens).repeat_interleave(k)
        return (
            (reward - base).unsqueeze(1).expand_as(roll.logp),
            reward.new_zeros(()),
            {"greedy_reward": float(base.mean())},
        )
