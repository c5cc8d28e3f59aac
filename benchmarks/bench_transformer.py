"""Transformer speed: `textgen train` against a bare PyTorch loop of the same shapes, and beam search with the
key/value cache against the same search without it.

Training: target tokens/s of the real `textgen train` of the recipe (a seq2seq Transformer) next to a hand-written
`torch.nn.Transformer` loop of the same sizes (pre-norm, GELU, shared and tied embeddings as the recipe says,
Adam, clipping, label smoothing) on the same batches, interleaved, both timed after the same warm-up updates;
the ratio of medians is printed (target >= 0.9).

Decoding: beam-5 sentences/s of textgen's beam search on the model the last `textgen train` run saved (trained
only --steps updates: the weights matter to the timing only through where outputs end, the same for both) against
the same beam search (decode/driver.py's decode_ids) on a wrapper whose `step` re-runs the decoder over the whole
prefix, so the cache is the only difference. Every sentence gets one output limit (--max-len) in both, and the
rows through the output layer are counted to show that both did the same work; interleaved, ratio of medians.

    python benchmarks/bench_transformer.py [--recipe translate-multi30k-transformer] [--set KEY=VALUE ...] \
        [--steps 24] [--repeats 2] [--sentences 50] [--max-len 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import statistics
import time
import warnings
from pathlib import Path

import torch
from bench_seq2seq import bare_loop_tokens_per_s, textgen_tokens_per_s
from torch import nn

from textgen.config import load_recipe
from textgen.data.seqvocab import PAD
from textgen.decode.driver import decode_ids
from textgen.device import resolve_device
from textgen.models.transformer import DecoderState, sinusoids
from textgen.results import invocation, make_result, write_result
from textgen.tasks.seq2seq import Seq2SeqTask, load_model
from textgen.train.distributed import Dist


class BareTransformer(nn.Module):
    """What a user would write by hand for the recipe's model: nn.Transformer (pre-norm, GELU) between scaled
    embeddings plus sinusoidal positions, one table for both sides and the output layer where the recipe shares
    and ties them."""

    def __init__(self, src_vocab: int, tgt_vocab: int, m):
        super().__init__()
        dim = m.hidden
        self.src_embed = nn.Embedding(src_vocab, dim, padding_idx=PAD)
        self.tgt_embed = self.src_embed if m.share_embeddings else nn.Embedding(tgt_vocab, dim, padding_idx=PAD)
        with warnings.catch_warnings():  # pre-norm layers cannot use nested tensors: torch says so at build
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(
                dim,
                m.heads,
                m.layers,
                m.layers,
                m.ffn or 4 * dim,
                m.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
        self.proj = nn.Linear(dim, tgt_vocab, bias=not m.tie_weights)
        if m.tie_weights:
            self.proj.weight = self.tgt_embed.weight
        self.register_buffer("positions", sinusoids(torch.arange(1024), dim), persistent=False)
        self.scale, self.drop = math.sqrt(dim), nn.Dropout(m.dropout)

    def embed(self, table: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        return self.drop(table(tokens) * self.scale + self.positions[: tokens.size(1)])

    def forward(self, src, src_lens, tgt_in):
        pad = torch.arange(src.size(1), device=src.device)[None, :] >= src_lens[:, None]  # True at padding
        T = tgt_in.size(1)
        causal = torch.ones(T, T, dtype=torch.bool, device=src.device).triu(1)  # True: may not look
        out = self.transformer(
            self.embed(self.src_embed, src),
            self.embed(self.tgt_embed, tgt_in),
            tgt_mask=causal,
            src_key_padding_mask=pad,
            memory_key_padding_mask=pad,
            tgt_is_causal=True,
        )
        return self.proj(out)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared tables once


@dataclasses.dataclass(frozen=True)
class Prefix:
    source: DecoderState  # the encoder's state, its self-attention cache left empty
    tokens: torch.Tensor  # (B, t) the target inputs fed so far, BOS first


class WithoutCache(nn.Module):
    """A Transformer decoded without its key/value cache: `step` runs the decoder over the whole prefix (the
    protocol's teacher-forced `prefix`) and keeps only the tokens between steps. Beam search calls encode, step
    and reorder_state; decode_ids reads parameters() for the device."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Prefix:
        return Prefix(self.model.encode(src, src_lens), src.new_zeros(src.size(0), 0))

    def step(self, prev: torch.Tensor, state: Prefix) -> tuple[torch.Tensor, Prefix]:
        tokens = torch.cat([state.tokens, prev.unsqueeze(1)], dim=1)  # (B, t + 1)
        features, _ = self.model.prefix(state.source, tokens)  # (B, t + 1, H), every position again
        return self.model.logits(features[:, -1]), Prefix(state.source, tokens)

    def reorder_state(self, state: Prefix, index: torch.Tensor, keep_source: bool = False) -> Prefix:
        source = self.model.reorder_state(state.source, index, keep_source)
        return Prefix(source, state.tokens.index_select(0, index))


def beam_timed(model, proj: nn.Module, sources, cfg, beam: int) -> tuple[float, int, list]:
    """Sentences/s of one decode_ids call, the rows through the output layer `proj`, and the outputs."""
    rows = [0]
    hook = proj.register_forward_hook(lambda mod, inp, out: rows.__setitem__(0, rows[0] + inp[0].shape[0]))
    try:
        start = time.perf_counter()
        out = decode_ids(model, sources, cfg, beam=beam)  # ends on the host
        seconds = time.perf_counter() - start
    finally:
        hook.remove()
    return len(sources) / seconds, rows[0], out


def cache_vs_none(checkpoint: Path, sources, beam: int, max_len: int, repeats: int, device) -> dict:
    """Beam search with the key/value cache against the same search re-running the prefix, interleaved."""
    model, _, recipe, _ = load_model(checkpoint, device)
    cfg = dataclasses.replace(recipe.decode, max_len_a=0.0, max_len_b=max_len)  # one limit for every sentence
    uncached = WithoutCache(model)
    decode_ids(model, sources[:10], cfg, beam=beam)  # warm-up: first allocations
    with_cache, without, rows = [], [], {}
    for _ in range(repeats):
        speed, rows["cache"], out_cache = beam_timed(model, model.proj, sources, cfg, beam)
        with_cache.append(speed)
        speed, rows["none"], out_none = beam_timed(uncached, model.proj, sources, cfg, beam)
        without.append(speed)
    c, n = statistics.median(with_cache), statistics.median(without)
    same = sum(a[0] == b[0] for a, b in zip(out_cache, out_none)) / len(sources)
    mean_len = statistics.mean(len(r[0][0]) for r in out_cache)  # tokens of the best output, EOS excluded
    print(
        f"beam {beam}, {len(sources)} sentences, outputs up to {max_len} tokens: without the cache {n:,.1f} sent/s   "
        f"with the key/value cache {c:,.1f} sent/s   ratio {c / n:.2f}x | output-layer rows {rows['cache']:,} with, "
        f"{rows['none']:,} without | same hypotheses: {100 * same:.0f}% | mean output {mean_len:.1f} tokens"
    )
    return {
        f"beam{beam}_cache_sentences_per_s": round(c, 1),
        f"beam{beam}_no_cache_sentences_per_s": round(n, 1),
        "cache_over_no_cache": round(c / n, 2),
        "output_rows_cache": rows["cache"],
        "output_rows_no_cache": rows["none"],
        "same_hypotheses": same,
        "beam_sentences": len(sources),
        "beam_max_len": max_len,
        "beam_mean_output_tokens": round(mean_len, 1),
        "beam_repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="translate-multi30k-transformer")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="recipe override (repeatable)"
    )
    parser.add_argument("--steps", type=int, default=24, help="updates per training run (both loops)")
    parser.add_argument("--warmup", type=int, default=4, help="updates before the clock starts")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=50, help="validation sources for beam search")
    parser.add_argument("--max-len", type=int, default=30, help="output length limit in tokens, EOS included")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--beam-repeats", type=int, default=2)
    parser.add_argument(
        "--checkpoint", type=Path, help="a trained translate-multi30k-transformer model for beam search (real lengths)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--out", type=Path, default=Path("results/speed/bench-transformer.json"))
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    start = time.perf_counter()
    device = resolve_device(args.device)
    recipe = load_recipe(args.recipe, args.overrides)
    if recipe.model.arch != "transformer":
        parser.error(f"recipe {args.recipe} builds model.arch = {recipe.model.arch!r}, not a transformer")
    task = Seq2SeqTask(recipe, dist=Dist(device=device))
    m = recipe.model
    bare_params = parameters(BareTransformer(len(task.vocabs.src), len(task.vocabs.tgt), m))
    ours_params = parameters(task.model)
    print(
        f"{args.recipe}: {m.layers}+{m.layers} layers, hidden {m.hidden}, {m.heads} heads, "
        f"ffn {m.ffn or 4 * m.hidden}, vocabulary {len(task.vocabs.src):,}/{len(task.vocabs.tgt):,}, "
        f"max_tokens {recipe.train.max_tokens}; "
        f"parameters: textgen {ours_params:,}, bare nn.Transformer {bare_params:,}"
    )
    metrics = {
        "device": str(device),
        "recipe": args.recipe,
        "overrides": args.overrides,
        "textgen_parameters": ours_params,
        "bare_parameters": bare_params,
    }
    bare, ours = [], []
    run_dir = Path("runs/bench") / f"transformer-{time.time_ns()}"
    for i in range(args.repeats):  # interleaved, so load changes hit both alike
        bare.append(bare_loop_tokens_per_s(task, args.steps, args.warmup, BareTransformer))
        sets = tuple(args.overrides)
        ours.append(textgen_tokens_per_s(args.recipe, args.steps, args.warmup, device, sets, run_dir / f"run{i}"))
    b, o = statistics.median(bare), statistics.median(ours)
    print(
        f"training, updates {args.warmup}-{args.steps}: bare nn.Transformer loop {b:,.0f} target tok/s   "
        f"textgen train {o:,.0f} target tok/s   ratio {o / b:.2f} (target >= 0.9)"
    )
    metrics.update(
        {
            "bare_loop_target_tokens_per_s": round(b, 1),
            "textgen_train_target_tokens_per_s": round(o, 1),
            "textgen_over_bare": round(o / b, 3),
            "compare_steps": args.steps,
            "compare_warmup_steps": args.warmup,
            "compare_repeats": args.repeats,
        }
    )
    # a trained model ends outputs where real ones end; else the last run's model (--steps updates), whose
    # outputs run longer, which favours the cache
    trained = args.checkpoint or run_dir / f"run{args.repeats - 1}" / "bench.pt"
    sources = task.valid_src[: args.sentences]
    metrics.update(cache_vs_none(trained, sources, args.beam, args.max_len, args.beam_repeats, device))
    shutil.rmtree(run_dir)  # the runs' checkpoints (with optimizer state) are scratch: the figures are in the JSON
    metrics["beam_checkpoint"] = str(args.checkpoint) if args.checkpoint else f"textgen train, {args.steps} updates"
    write_result(
        args.out,
        make_result(
            metrics,
            task.sha256,
            time.perf_counter() - start,
            command=invocation("python benchmarks/bench_transformer.py"),
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
