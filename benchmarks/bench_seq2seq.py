"""Seq2seq speed: teacher-forced training tokens/s (and `textgen train` against a bare hand-written loop of the
same shapes), greedy and beam-5 sentences/s, batched vs per-sentence beam (`--part speed`, `make bench`); or the
cost of each sequence-level objective's update against an XENT update on the same batches, MIXER at every stage
of its schedule split into its phases (`--part objectives`, `make bench-objectives`).

Uses the translate-multi30k model shape on Multi30k sources. With --checkpoint a trained model is
timed (realistic output lengths); without, a random model, whose outputs run to the length limit.

    python benchmarks/bench_seq2seq.py [--part speed|objectives] [--checkpoint checkpoints/translate-multi30k.pt] \
        [--sentences 200] [--device cuda]

On a GPU, fp16 (with loss scaling) is timed next to fp32 and bf16.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textgen.config import load_recipe, recipe_from_checkpoint
from textgen.data.seqvocab import PAD
from textgen.decode.driver import decode_ids
from textgen.device import resolve_device, synchronize
from textgen.objectives import OBJECTIVES, mixer
from textgen.objectives.base import Context
from textgen.precision import autocast, cpu_runs_bf16_lstm, grad_scaler
from textgen.results import invocation, make_result, write_result
from textgen.tasks.seq2seq import Seq2SeqTask
from textgen.train import checkpoint
from textgen.train.distributed import Dist
from textgen.train.lr_schedule import build_optimizer


class PhaseTimer:
    """Wall time of MIXER's sampling (the rollout) and reward (sentence BLEU) inside a step."""

    def __init__(self, objective, device: torch.device):
        self.seconds = defaultdict(float)
        self.device = device
        self._rollout = mixer.rollout
        mixer.rollout = self._timed("sampling", self._rollout)
        if hasattr(objective, "rewards"):
            objective.rewards = self._timed("reward", objective.rewards)

    def _timed(self, name, fn):
        def run(*args, **kwargs):
            synchronize(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - start
            return out

        return run

    def close(self):
        mixer.rollout = self._rollout


def timed_updates(task: Seq2SeqTask, objective, first: int, steps: int, precision: str = "fp32"):
    """The trainer's update (forward at `precision`, backward, clip, Adam) on `steps` real batches from
    `first`: seconds per phase, summed, and the target tokens seen. A tiny lr leaves the model as it was."""
    model = task.model.train()
    device = task.dist.device
    settings = dataclasses.replace(task.recipe.train, optimizer="adam", lr=1e-5, weight_decay=0.0)
    opt = build_optimizer(list(model.parameters()) + list(objective.parameters()), settings)  # fused where it can
    scaler = grad_scaler(precision, device)
    timer = PhaseTimer(objective, device)
    split, tokens = defaultdict(float), 0

    def clock() -> float:
        synchronize(device)
        return time.perf_counter()

    try:
        for step in range(first, first + steps):
            t0 = clock()
            with autocast(precision, device):
                out = objective(model, task._batch(step), step=step)
            t1 = clock()
            opt.zero_grad()
            scaler.scale(out.loss_sum / out.ntokens).backward()
            t2 = clock()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            scaler.step(opt)
            scaler.update()
            t3 = clock()
            split["forward"] += t1 - t0
            split["backward"] += t2 - t1
            split["optimizer"] += t3 - t2
            tokens += out.ntokens
    finally:
        timer.close()
    for name in ("sampling", "reward"):
        split[name] = timer.seconds[name]
    split["forward"] -= split["sampling"] + split["reward"]  # what remains: encoder, XENT prefix, baseline
    return split, tokens


def xent_context(task: Seq2SeqTask) -> Context:
    return Context(task.recipe, task.vocabs.tgt, task.references, task.steps_per_epoch)


def train_tokens_per_s(task: Seq2SeqTask, steps: int, precision: str = "fp32") -> float:
    """Teacher-forced (XENT) training throughput, two warm-up updates excluded."""
    xent = OBJECTIVES["xent"](xent_context(task))
    timed_updates(task, xent, 0, 2, precision)
    split, tokens = timed_updates(task, xent, 2, steps, precision)
    return tokens / sum(split.values())


class BareSeq2Seq(nn.Module):
    """What a user would write by hand for the recipe's model: packed bi-LSTM encoder, one fused decoder
    nn.LSTM call over the target, Luong general attention, tied output projection."""

    def __init__(self, src_vocab: int, tgt_vocab: int, m):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(src_vocab, m.embed), nn.Embedding(tgt_vocab, m.embed)
        self.encoder = nn.LSTM(
            m.embed, m.hidden // 2, m.layers, batch_first=True, bidirectional=True, dropout=m.dropout
        )
        self.decoder = nn.LSTM(m.embed, m.hidden, m.layers, batch_first=True, dropout=m.dropout)
        self.key = nn.Linear(m.hidden, m.hidden, bias=False)
        self.combine = nn.Linear(2 * m.hidden, m.hidden, bias=False)
        self.proj = nn.Linear(m.hidden, tgt_vocab)
        self.proj.weight = self.tgt_embed.weight
        self.drop = nn.Dropout(m.dropout)

    def forward(self, src, src_lens, tgt_in):
        packed = pack_padded_sequence(
            self.drop(self.src_embed(src)), src_lens.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        h = torch.cat([h[0::2], h[1::2]], -1)  # (layers, B, hidden): both directions side by side
        c = torch.cat([c[0::2], c[1::2]], -1)
        dec, _ = self.decoder(self.drop(self.tgt_embed(tgt_in)), (h, c))
        scores = torch.bmm(dec, self.key(memory).transpose(1, 2))
        pad = torch.arange(src.size(1), device=src.device)[None, :] >= src_lens[:, None]
        weights = scores.masked_fill(pad[:, None, :], torch.finfo(scores.dtype).min).softmax(-1)
        feats = torch.tanh(self.combine(torch.cat([torch.bmm(weights, memory), dec], -1)))
        return self.proj(self.drop(feats))


def bare_loop_tokens_per_s(task: Seq2SeqTask, steps: int, warmup: int, bare_model=None) -> float:
    """Target tokens/s of the hand-written loop on the batches `textgen train` takes first, after `warmup`
    steps (new batch shapes make oneDNN build kernels at first). Batches are collated and on the device
    beforehand, so the bare loop does not even pay for its data. bare_model: the hand-written model's class,
    built from (source vocabulary, target vocabulary, model config) (default BareSeq2Seq)."""
    recipe, device = task.recipe, task.dist.device
    torch.manual_seed(0)
    model = (bare_model or BareSeq2Seq)(len(task.vocabs.src), len(task.vocabs.tgt), recipe.model).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.train.lr)
    batches = [task._batch(step) for step in range(steps)]
    tokens, start = 0, 0.0
    for i, b in enumerate(batches):
        if i == warmup:
            synchronize(device)
            tokens, start = 0, time.perf_counter()
        logits = model(b.src, b.src_lens, b.tgt_in)
        loss = (
            F.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                b.tgt_out.reshape(-1),
                ignore_index=PAD,
                reduction="sum",
                label_smoothing=recipe.train.label_smoothing,
            )
            / b.ntokens
        )
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe.train.clip)
        opt.step()
        tokens += b.ntokens
    synchronize(device)
    return tokens / (time.perf_counter() - start)


def textgen_tokens_per_s(
    recipe_name: str,
    steps: int,
    warmup: int,
    device: torch.device,
    overrides: tuple[str, ...] = (),
    run_dir: Path | None = None,
) -> float:
    """The real `textgen train` (its batching, loss, logging, progress bar), over the same steps as the bare
    loop: read from its metrics.csv, whose cumulative tokens and training seconds are logged every `warmup` steps.
    `overrides`: further `--set` values (threads, precision, vocabulary). The model is saved as run_dir/bench.pt
    (run_dir None: a fresh folder under runs/bench)."""
    run_dir = run_dir or Path("runs/bench") / f"seq2seq-{time.time_ns()}"
    cmd = [
        sys.executable,
        "-m",
        "textgen",
        "train",
        "-r",
        recipe_name,
        "--device",
        str(device),
        "--set",
        f"train.max_steps={steps}",
        "--set",
        f"train.eval_every={steps}",
        "--set",
        f"train.log_every={warmup}",
        "--set",
        "train.max_minutes=0.0",
        "--set",
        "train.valid_metric=loss",
        "--set",
        "train.valid_subset=50",
        *(arg for value in overrides for arg in ("--set", value)),
        "-o",
        str(run_dir / "bench.pt"),
        "--run-dir",
        str(run_dir),
    ]
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r["train_loss"]]
    first, last = rows[0], rows[-1]  # rows[0] is logged at step `warmup`
    return (int(last["tokens"]) - int(first["tokens"])) / (float(last["seconds"]) - float(first["seconds"]))


def textgen_vs_bare(task: Seq2SeqTask, recipe_name: str, steps: int, repeats: int, warmup: int = 20) -> dict:
    """`textgen train` next to the bare loop, interleaved, both timed after the same warm-up steps."""
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(bare_loop_tokens_per_s(task, steps, warmup))
        ours.append(textgen_tokens_per_s(recipe_name, steps, warmup, task.dist.device))
    b, o = statistics.median(bare), statistics.median(ours)
    print(
        f"teacher-forced training, steps {warmup}-{steps}: bare hand-written loop {b:,.0f} target tok/s   "
        f"textgen train {o:,.0f} target tok/s   ratio {o / b:.2f} (target >= 0.9)"
    )
    return {
        "bare_loop_target_tokens_per_s": round(b, 1),
        "textgen_train_target_tokens_per_s": round(o, 1),
        "textgen_over_bare": round(o / b, 3),
        "compare_steps": steps,
        "compare_warmup_steps": warmup,
    }


def mixer_vs_xent(task: Seq2SeqTask, steps: int, T: int = 12, stages: tuple[int, ...] = (12, 8, 4, 0)) -> dict:
    """MIXER updates at each stage of its schedule (s = T: the XENT epochs; then XENT prefix of s tokens,
    sampled rest, sentence BLEU, learned baseline) against XENT updates on the same batches: the cost grows
    as s shrinks, so one stage alone misstates what a whole run costs."""
    ctx = xent_context(task)
    timed_updates(task, OBJECTIVES["xent"](ctx), 0, 2)  # warm-up
    xent = {k: v / steps for k, v in timed_updates(task, OBJECTIVES["xent"](ctx), 2, steps)[0].items()}
    x = sum(xent.values())
    out = {"xent_step_ms": round(1000 * x, 1), "mixer_T": T}
    for s in stages:
        schedule = dataclasses.replace(
            ctx.recipe.objective.mixer,
            T=T,
            delta=max(T - s, 1),
            xent_epochs=1e9 if s >= T else 0.0,
            epochs_per_stage=1e9,
            min_s=min(s, T),
        )
        cfg = dataclasses.replace(ctx.recipe.objective, name="mixer", mixer=schedule)
        mixer_ctx = dataclasses.replace(ctx, recipe=dataclasses.replace(ctx.recipe, objective=cfg))
        mix = {k: v / steps for k, v in timed_updates(task, OBJECTIVES["mixer"](mixer_ctx), 2, steps)[0].items()}
        m = sum(mix.values())
        out.update({f"mixer_s{s}_step_ms": round(1000 * m, 1), f"mixer_s{s}_over_xent": round(m / x, 2)})
        out.update({f"mixer_s{s}_{k}_ms": round(1000 * v, 1) for k, v in mix.items()})
        print(
            f"MIXER step at s = {s:2d} of T = {T}: {1000 * m:.0f} ms vs XENT {1000 * x:.0f} ms on the same batches: "
            f"{m / x:.2f}x | split: " + ", ".join(f"{k} {1000 * v:.0f} ms ({100 * v / m:.0f}%)" for k, v in mix.items())
        )
    return out


def sequence_objectives_vs_xent(task: Seq2SeqTask, steps: int, xent_step_ms: float) -> dict:
    """The other sequence-level objectives, fully sequence-level (no XENT prefix), on the same batches:
    MRT (finetune-mrt's 4 sampled candidates, one rescoring pass; finetune-mrt-beam's plus beam 4's 4-best),
    multi-sample REINFORCE with the leave-one-out baseline (4 samples, Kool et al.), SCST (one sample against
    the eval-mode greedy decode) and the ranking objective (finetune-rank's beam 4 4-best)."""
    ctx = xent_context(task)
    objective = ctx.recipe.objective
    sampled = dataclasses.replace(objective.mixer, T=1, delta=1, xent_epochs=0.0, min_s=0)  # s = 0 throughout
    settings = {  # (name, its [objective.mixer] or [objective.mrt] table)
        "mrt": ("mrt", dict(mrt=dataclasses.replace(objective.mrt, candidates=4, xent_weight=0.3))),
        "mrt_beam4": ("mrt", dict(mrt=dataclasses.replace(objective.mrt, candidates=4, beam=4, xent_weight=0.3))),
        "reinforce_loo4": ("mixer", dict(mixer=dataclasses.replace(sampled, baseline="loo", samples=4))),
        "scst": ("scst", dict(mixer=dataclasses.replace(sampled, xent_weight=0.0))),
        "rank_beam4": ("rank", dict(rank=dataclasses.replace(objective.rank, beam=4, candidates=0))),
    }
    out = {}
    for label, (name, tables) in settings.items():
        cfg = dataclasses.replace(objective, name=name, **{"mixer": sampled, **tables})
        octx = dataclasses.replace(ctx, recipe=dataclasses.replace(ctx.recipe, objective=cfg))
        split = timed_updates(task, OBJECTIVES[cfg.name](octx), 2, steps)[0]
        ms = 1000 * sum(split.values()) / steps
        out.update({f"{label}_step_ms": round(ms, 1), f"{label}_over_xent": round(ms / xent_step_ms, 2)})
        print(f"{label} step: {ms:.0f} ms vs XENT {xent_step_ms:.0f} ms on the same batches: {ms / xent_step_ms:.2f}x")
    return out


def projection_bound(model, rows: int, batched_seconds: float, precision: str) -> dict:
    """How much of batched beam search is the output projection alone (hidden x vocab matmul per row)?

    `rows` went through the projection in the timed batched beam-5 decode; the same matmul is timed on
    512-row blocks: that time is a floor no batching can go under."""
    device = model.proj.weight.device
    x = torch.randn(512, model.proj.in_features, device=device)
    with torch.no_grad(), autocast(precision, device):
        for _ in range(3):
            model.proj(x)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(20):
            model.proj(x)
        synchronize(device)
        per_row = (time.perf_counter() - start) / (20 * 512)
    floor = rows * per_row
    return {
        "projection_rows": rows,
        "projection_seconds": round(floor, 3),
        "beam5_batched_seconds": round(batched_seconds, 3),
        "projection_share": round(floor / batched_seconds, 3),
    }


def sentences_per_s(model, sources, cfg, beam: int, batch_size: int) -> tuple[float, list]:
    start = time.perf_counter()
    out = decode_ids(model, sources, dataclasses.replace(cfg, batch_size=batch_size), beam=beam)  # ends on the host
    return len(sources) / (time.perf_counter() - start), out


def speed(task: Seq2SeqTask, recipe, args, precisions: tuple[str, ...]) -> dict:
    """Training tokens/s (and against the bare loop), greedy and beam-5 sentences/s, batched vs one at a time."""
    device, model, metrics = task.dist.device, task.model, {}
    for precision in precisions:
        metrics[f"train_target_tokens_per_s_{precision}"] = round(
            train_tokens_per_s(task, args.train_steps, precision), 1
        )
    print(
        f"teacher-forced training on {device}: "
        + ", ".join(f"{metrics[f'train_target_tokens_per_s_{p}']:,.0f} target tokens/s {p}" for p in precisions)
    )
    if args.compare_steps:
        metrics.update(textgen_vs_bare(task, args.recipe, args.compare_steps, args.repeats))
    model.eval()
    sources = task.valid_src[: args.sentences]
    few = sources[: max(10, args.sentences // 10)]  # per-sentence beam is slow: time a tenth
    for precision in precisions:
        cfg = dataclasses.replace(recipe.decode, precision=precision)
        greedy, _ = sentences_per_s(model, sources, cfg, 1, cfg.batch_size)
        rows = [0]  # rows through the output projection during the batched decode
        hook = model.proj.register_forward_hook(lambda mod, inp, out: rows.__setitem__(0, rows[0] + inp[0].shape[0]))
        try:
            batched, out_batched = sentences_per_s(model, sources, cfg, 5, cfg.batch_size)
        finally:
            hook.remove()
        single, out_single = sentences_per_s(model, few, cfg, 5, 1)
        same = sum(a[0] == b[0] for a, b in zip(out_single, out_batched[: len(few)])) / len(few)
        metrics.update(
            {
                f"greedy_sentences_per_s_{precision}": round(greedy, 1),
                f"beam5_batched_sentences_per_s_{precision}": round(batched, 1),
                f"beam5_single_sentences_per_s_{precision}": round(single, 1),
                f"beam5_batched_over_single_{precision}": round(batched / single, 2),
                f"batched_equals_single_{precision}": same,
            }
        )
        bound = projection_bound(model, rows[0], len(sources) / batched, precision)
        metrics.update({f"{k}_{precision}": v for k, v in bound.items()})
        single_seconds = len(sources) / single
        print(
            f"{precision}: the output projection alone ({bound['projection_rows']:,} rows) takes "
            f"{bound['projection_seconds']:.2f} s of the batched beam's {bound['beam5_batched_seconds']:.2f} s; "
            f"one-at-a-time beam needs {single_seconds:.1f} s for these sentences, so no batching can beat "
            f"{single_seconds / bound['projection_seconds']:.1f}x on this {device.type}"
        )
        metrics[f"beam5_max_ratio_from_projection_{precision}"] = round(single_seconds / bound["projection_seconds"], 1)
        print(
            f"{precision}: greedy {greedy:,.1f} sent/s | beam 5 batched {batched:,.1f} sent/s | beam 5 one at a "
            f"time {single:,.1f} sent/s | ratio {batched / single:.1f}x (target >= 10x) | "
            f"same hypotheses: {100 * same:.0f}%"
        )
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="translate-multi30k")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--compare-steps", type=int, default=80, help="steps per run of textgen vs the bare loop")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--part", choices=("speed", "objectives"), default="speed")
    parser.add_argument("--out", type=Path, help="default: results/speed/bench-seq2seq.json or bench-objectives.json")
    args = parser.parse_args()
    args.out = args.out or Path(f"results/speed/bench-{'seq2seq' if args.part == 'speed' else 'objectives'}.json")
    start = time.perf_counter()
    device = resolve_device(args.device)
    recipe = load_recipe(args.recipe)
    if args.checkpoint:  # trained weights: realistic output lengths for sampling and search
        payload = checkpoint.load(args.checkpoint, kind="seq2seq")
        recipe = recipe_from_checkpoint(payload)
        task = Seq2SeqTask(recipe, payload["vocab"], Dist(device=device))
        task.model.load_state_dict(payload["model"])
    else:
        task = Seq2SeqTask(recipe, dist=Dist(device=device))
    # bf16 on the CPU needs oneDNN's bf16 LSTM (AVX512-BF16 or AMX): timed only where it runs
    precisions = (
        ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")[: 2 if cpu_runs_bf16_lstm() else 1]
    )
    metrics = {"device": str(device), **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {})}
    if args.part == "objectives":
        metrics.update(mixer_vs_xent(task, args.train_steps))
        metrics.update(sequence_objectives_vs_xent(task, args.train_steps, metrics["xent_step_ms"]))
    else:
        metrics.update(speed(task, recipe, args, precisions))
    metrics["checkpoint"] = str(args.checkpoint or "random init")
    shas = task.sha256
    write_result(
        args.out,
        make_result(
            metrics, shas, time.perf_counter() - start, command=invocation("python benchmarks/bench_seq2seq.py")
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
