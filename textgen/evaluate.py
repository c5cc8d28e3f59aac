"""`textgen eval`: score a checkpoint on a corpus split, or score hypothesis files against references."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from textgen import checkpoint
from textgen.config import replace_given
from textgen.data.parallel import load_parallel, read_lines
from textgen.errors import UserError
from textgen.metrics import check_metrics, score
from textgen.precision import check_precision


def eval_files(hyp: Path, refs: list[Path], metrics: list[str]) -> tuple[dict, dict]:
    """Score a hypothesis file against one or more line-aligned reference files."""
    check_metrics(metrics)
    if not refs:
        raise UserError("--hyp needs at least one --ref file")
    return score(metrics, read_lines(hyp), [read_lines(r) for r in refs])


def eval_lm(ckpt: Path, data: str | None, split: str, batch_size: int, device: torch.device) -> tuple[dict, dict]:
    from textgen.lm import evaluate, load_model, metrics_from_loss, prepare_data

    model, vocab, recipe, _ = load_model(ckpt, device)
    if data:
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, corpus=data))
    corpus = prepare_data(recipe, vocab, splits=(split,))
    if split not in corpus.ids:
        raise UserError(f"corpus '{recipe.data.corpus}' has no {split} split")
    loss = evaluate(model, corpus.ids[split], batch_size, recipe.train.bptt)
    return metrics_from_loss(loss, recipe.data.level, split), corpus.sha256


def eval_seq2seq(ckpt: Path, data: str | None, split: str, metrics: list[str], beam: int | None,
                 batch_size: int | None, hyp_out: Path | None, precision: str | None,
                 device: torch.device) -> tuple[dict, dict, dict]:
    """Decode a split, write the hypotheses, and score them against the reference (and all references)."""
    from textgen.seq2seq import encode_sources, load_model, translate

    check_metrics(metrics)
    model, vocabs, recipe, _ = load_model(ckpt, device)
    corpus = load_parallel(data or recipe.data.corpus)
    if split not in corpus.splits:
        raise UserError(f"corpus '{data or recipe.data.corpus}' has no {split} split: choose from {', '.join(corpus.splits)}")
    part = corpus.splits[split]
    cfg = replace_given(recipe.decode, batch_size=batch_size, precision=precision)
    check_precision(cfg.precision, device)
    beam = cfg.beam if beam is None else beam
    sources = encode_sources(vocabs, part.sources, recipe.data.max_source_tokens)
    start = time.perf_counter()
    hyps = [h[0] if h else "" for h in translate(model, vocabs, sources, dataclasses.replace(cfg, nbest=1), beam=beam)]
    seconds = time.perf_counter() - start
    if hyp_out:
        hyp_out.parent.mkdir(parents=True, exist_ok=True)
        hyp_out.write_text("".join(h + "\n" for h in hyps))
    values, signatures = score(metrics, hyps, [part.targets])
    if part.extra_refs:
        multi, _ = score(metrics, hyps, [part.targets, *part.extra_refs])
        values.update({f"{k}_multiref": v for k, v in multi.items()})
    values.update({"beam": beam, "precision": cfg.precision, "device": str(device), "sentences": len(hyps), "distinct_outputs": len(set(hyps)),
                   "decode_seconds": round(seconds, 2), "sentences_per_s": round(len(hyps) / seconds, 1)})
    return values, corpus.sha256, signatures


def checkpoint_kind(ckpt: Path) -> str:
    return checkpoint.load(ckpt)["kind"]
