"""`textgen eval`: score a checkpoint on a corpus split, or score hypothesis files against references."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from textgen.config import DecodeConfig
from textgen.console import progress_bar, stderr_console
from textgen.data.corpus import training_corpus
from textgen.data.parallel import load_parallel
from textgen.errors import UserError
from textgen.metrics import check_metrics, score
from textgen.paths import output_file
from textgen.train import checkpoint

if TYPE_CHECKING:
    from textgen.decode.mbr import MbrChoice


def warn_if_changed(ckpt: Path, payload: dict, scored: dict[str, str]) -> None:
    """One line on stderr when a scored file is not the one the checkpoint recorded when it was trained: the
    scores are then not comparable with earlier ones. A warning, not a refusal: scoring a corrected test set
    is legitimate, and the results file records the sha256 of what was scored."""
    then = payload.get("data", {}).get("sha256", {})
    changed = [name for name, sha in scored.items() if sha and then.get(name) and then[name] != sha]
    if changed:
        stderr_console().print(
            f"warning: {', '.join(changed)} changed since '{ckpt}' was trained (its sha256 differs from the "
            "checkpoint's record): these scores are not comparable with scores of the original files",
            markup=False,
            highlight=False,
        )


def eval_lm(ckpt: Path, data: str | None, split: str, batch_size: int, device: torch.device) -> tuple[dict, dict]:
    from textgen.decode import settings
    from textgen.tasks.lm import evaluate, load_model, metrics_from_loss, prepare_data

    settings.check(batch_size=batch_size)
    model, vocab, recipe, payload = load_model(ckpt, device)
    corpus_name = data or training_corpus(payload, "lm", recipe.data.corpus, split)
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, corpus=corpus_name))
    corpus = prepare_data(recipe, vocab, splits=(split,))
    if split not in corpus.ids:
        raise UserError(f"corpus '{recipe.data.corpus}' has no {split} split")
    if not data:
        warn_if_changed(ckpt, payload, corpus.sha256)
    loss = evaluate(model, corpus.ids[split], batch_size, recipe.train.bptt, progress=f"score {split}")
    return metrics_from_loss(loss, recipe.data.level, split), corpus.sha256


@dataclass
class OpenSplit:
    """A seq2seq model (or ensemble) and the corpus split it is to decode, with the resolved decode settings."""

    model: object
    vocabs: object
    cfg: DecodeConfig
    split: str
    part: object  # data.parallel's ParallelSplit: sources, targets, extra_refs
    sha256: dict
    ids: list[list[int]]  # the encoded sources

    def references(self) -> list[list[str]]:
        """The reference streams (the target, then any extra references), normalised as outputs are."""
        return [[self.vocabs.tgt.normalize(t) for t in stream] for stream in (self.part.targets, *self.part.extra_refs)]

    def decode(self) -> list:
        """Every source decoded as cfg says (textgen/decode/dispatch.py), with a progress bar."""
        from textgen.decode.dispatch import decode_sources, work_items

        with progress_bar(f"decode {self.split}", work_items(self.cfg, len(self.ids))) as advance:
            return decode_sources(self.model, self.vocabs.tgt.decode, self.ids, self.cfg, advance=advance)


def open_split(
    ckpts: list[Path], data: str | None, split: str, device: torch.device, seed=None, mbr=None, nbest=1, **options
) -> OpenSplit:
    """Load the checkpoint(s), resolve the decode settings over their recipe's [decode] and read the split of
    `data` (None: the corpus the first checkpoint was trained on, with a warning when it changed since)."""
    from textgen.decode import settings
    from textgen.tasks.seq2seq import encode_sources, load_models

    model, vocabs, recipe, payload = load_models(ckpts, device)
    cfg = settings.resolve(recipe.decode, device, seed=seed, mbr=mbr, model=model, nbest=nbest, **options)
    corpus_name = data or training_corpus(payload, "seq2seq", recipe.data.corpus, split)
    corpus = load_parallel(corpus_name, only=split)  # the split alone, not the training text
    if not data:
        warn_if_changed(ckpts[0], payload, corpus.sha256)
    part = corpus.splits[split]
    ids = encode_sources(vocabs, part.sources, recipe.data.max_source_tokens)
    return OpenSplit(model, vocabs, cfg, split, part, corpus.sha256, ids)


def eval_seq2seq(
    ckpts: list[Path],
    data: str | None,
    split: str,
    metrics: list[str],
    hyp_out: Path | None,
    device: torch.device,
    rerank: Path | None = None,
    **options,
) -> tuple[dict, dict, dict, Path | None]:
    """Decode a split with one checkpoint or the ensemble of several, score the hypotheses against the reference
    (and all references), and write them where `hyp_out` says (see `hypotheses_path`); returns the metrics, the
    data's sha256s, the metric signatures and the file written (None: none asked for).

    `options` (beam, batch_size, precision, seed, mbr, mbr_sampling, ...; None: the recipe's) go onto the
    checkpoint's [decode] as for `textgen decode` (decode/settings.py resolve): mbr=N decodes by MBR over N sampled
    candidates per source (textgen/decode/mbr.py) instead of beam search, as does a recipe's decode.mbr.
    `rerank`: a file from `textgen rerank`; the n best of a beam at least that wide are reranked (rerank.py)."""
    from textgen import rerank as reranking

    check_metrics(metrics)
    reranker = reranking.load(rerank, str(device)) if rerank else None
    nbest = 1
    if reranker:
        options |= reranker.decode_settings(options.get("beam"), options.get("lenpen"), mbr=options.get("mbr"))
        nbest = options.pop("nbest")
    s = open_split(ckpts, data, split, device, nbest=nbest, **options)
    decoder = decoder_name(s.cfg) + ([f"rerank-{digest(Path(rerank).read_bytes())}"] if rerank else [])
    hyp_path = hypotheses_path(hyp_out, checkpoints_name(ckpts), data, split, decoder) if hyp_out else None
    start = time.perf_counter()
    decoded = s.decode()
    hyps = reranker.choose(s.part.sources, [d.nbest for d in decoded]) if reranker else [d.text for d in decoded]
    seconds = time.perf_counter() - start
    if hyp_path:
        try:
            hyp_path.write_text("".join(h + "\n" for h in hyps))
        except OSError as exc:
            raise UserError(f"could not write the hypotheses to '{hyp_path}' ({exc.strerror})") from None
    refs = s.references()
    values, signatures = score(metrics, hyps, refs[:1])
    if s.part.extra_refs:
        multi, _ = score(metrics, hyps, refs)
        values.update({f"{k}_multiref": v for k, v in multi.items()})
    cfg = s.cfg
    values.update(decoder_values(cfg, [d.choice for d in decoded]) if cfg.mbr.samples else {"beam": cfg.beam})
    if reranker:
        values.update(
            {"rerank_nbest": reranker.nbest, **{f"rerank_{k}_weight": w for k, w in reranker.weights.items()}}
        )
    values.update(
        {
            "precision": cfg.precision,
            "device": str(device),
            "sentences": len(hyps),
            "distinct_outputs": len(set(hyps)),
            "decode_seconds": round(seconds, 2),
            "sentences_per_s": round(len(hyps) / seconds, 1),
        }
    )
    return values, s.sha256, signatures, hyp_path


def decoder_name(cfg: DecodeConfig) -> list[str]:
    """Every setting that shapes the outputs, as the parts of a hypotheses file name."""
    from textgen.decode.mbr import sampling_filters

    m = cfg.mbr
    if not m.samples:
        decoder = [f"beam{cfg.beam}", f"lenpen{cfg.lenpen:g}"]
    else:
        eps, top_p = sampling_filters(m.sampling, m.epsilon, m.top_p)
        kept = {"epsilon": f"{eps:g}", "top_p": f"{top_p:g}"}.get(m.sampling, "")
        decoder = [f"mbr{m.samples}", m.sampling + kept, m.utility, f"t{cfg.temperature:g}", f"seed{m.seed}"]
        decoder += [f"beam{m.beam}", f"lenpen{cfg.lenpen:g}"] if m.beam else []
    return decoder + [f"len{cfg.max_len_a:g}x+{cfg.max_len_b}", f"norepeat{cfg.no_repeat_ngram}", cfg.precision]


def decoder_values(cfg: DecodeConfig, chosen: list[MbrChoice]) -> dict:
    """What an MBR eval reports beside its scores: its settings, and how many distinct candidates it drew."""
    m = cfg.mbr
    distinct = sum(len(set(c.candidates[: m.samples])) for c in chosen) / max(1, len(chosen))  # drawn ones
    values = {
        "mbr": m.samples,
        "mbr_sampling": m.sampling,
        "mbr_utility": m.utility,
        "mbr_seed": m.seed,
        "mbr_distinct_candidates": round(distinct, 2),
    }
    if m.beam:
        values["mbr_beam"] = m.beam
        values["mbr_chose_searched"] = round(sum(c.index >= m.samples for c in chosen) / max(1, len(chosen)), 4)
    if m.sampling != "ancestral":
        values[f"mbr_{m.sampling}"] = m.epsilon if m.sampling == "epsilon" else m.top_p
    if cfg.temperature != 1.0:
        values["temperature"] = cfg.temperature
    return values


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def checkpoints_name(ckpts: list[Path]) -> str:
    """The checkpoint's stem, or an ensemble's stems joined by '+' (a digest of their paths where stems repeat
    or the name grows long), for hypotheses file names."""
    stems = [p.stem for p in ckpts]
    name = "+".join(stems)
    if len(set(stems)) < len(stems) or len(name) > 80:
        name = f"ensemble{len(ckpts)}-{digest('+'.join(str(p.resolve()) for p in ckpts).encode())}"
    return name


def hypotheses_path(hyp_out: str | Path, name: str, data: str | None, split: str, decoder: list[str]) -> Path:
    """`hyp_out` itself, or inside a folder (an existing one, or a path ending in '/') a file named for the
    checkpoint (`name`: its stem, an ensemble's joined by '+'), the corpus (when --data names another), the split
    and every setting that shapes the output (`decoder`), so that evals with other settings never overwrite each
    other's; checked before decoding."""
    text = str(hyp_out)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        corpus = ""
        if data is not None:  # a registry name as it is, file paths by their digest
            corpus = (data if re.fullmatch(r"[\w.-]+", data) else digest(data.encode())) + "."
        text = str(Path(text) / f"{name}.{corpus}{split}.{'_'.join(decoder)}.hyp")
    return output_file(text, "--hyp-out", "hyps.txt")


def checkpoint_kind(ckpt: Path) -> str:
    return checkpoint.load(ckpt)["kind"]


def eval_checkpoint(
    ckpts: list[Path], data: str | None, split: str, metrics: list[str], batch_size: int | None, device: str, **decode
) -> tuple[dict, dict, dict, Path | None]:
    """A language model's loss on a split, or a seq2seq model's (or ensemble's) decoded split scored (see
    eval_seq2seq for `decode`: hyp_out, beam, mbr, mbr_*, seed, precision). Returns values, sha256s, signatures,
    hypotheses file."""
    from textgen.device import resolve_device

    if split not in ("valid", "test"):
        raise UserError(f"--split must be valid or test, got '{split}'")
    if checkpoint_kind(ckpts[0]) != "lm":
        hyp_out = decode.pop("hyp_out", None)
        return eval_seq2seq(
            ckpts, data, split, metrics, hyp_out, resolve_device(device), batch_size=batch_size, **decode
        )
    if len(ckpts) > 1:
        raise UserError("an ensemble is of seq2seq checkpoints: evaluate one language model at a time")
    if decode.get("mbr") is not None or decode.get("mbr_beam"):
        raise UserError("--mbr decodes seq2seq checkpoints; this one is a language model")
    if decode.get("hyp_out") is not None or decode.get("rerank") is not None:
        raise UserError("--hyp-out and --rerank are for a seq2seq checkpoint's outputs; this one is a language model")
    streams = 10 if batch_size is None else batch_size
    values, shas = eval_lm(ckpts[0], data, split, streams, resolve_device(device))
    return values, shas, {}, None


def run(
    ckpt: Path | list[Path] | None = None,
    hyp: list[Path] = (),
    ref: list[Path] = (),
    metric: list[str] = (),
    *,
    data: str | None = None,
    split: str = "valid",
    paired_bootstrap: int = 0,
    paired_ar: int = 0,
    batch_size: int | None = None,
    device: str = "auto",
    results: str | None = None,
    **decode,
) -> tuple[dict, list[dict]]:
    """`textgen eval` (same names as its options): score `hyp` files against `ref` files (several files, or a
    paired test: compared, the first as the baseline), else a checkpoint (or a list: their ensemble) on a split
    (`decode`: see eval_checkpoint; its seed also seeds the paired tests). Returns the result (also written to
    `results`) and the comparisons to print (none for one file)."""
    from textgen.compare import score_files
    from textgen.results import make_result, write_result

    start = time.perf_counter()
    ckpts = [Path(ckpt)] if isinstance(ckpt, (str, Path)) else [Path(c) for c in ckpt or ()]
    if results:
        results = output_file(results, "--results", "results.json")
    metrics, extra, comparisons = list(metric) or ["bleu4"], {}, []
    if (paired_bootstrap or paired_ar) and not hyp:
        raise UserError(
            "--paired-bootstrap and --paired-ar compare systems' files: give --hyp BASE --hyp NEW --ref REF"
        )
    if hyp:
        seed = decode.get("seed")
        values, shas, signatures, comparisons = score_files(hyp, ref, metrics, paired_bootstrap, paired_ar, seed)
        if comparisons:
            extra["systems"] = [str(h) for h in hyp]
    elif not ckpts:
        raise UserError("give a checkpoint to evaluate, or --hyp FILE --ref FILE to score files")
    else:
        values, shas, signatures, written = eval_checkpoint(ckpts, data, split, metrics, batch_size, device, **decode)
        if written:
            extra["hypotheses"] = str(written)
    if ckpts:
        extra["checkpoint"] = str(ckpts[0]) if len(ckpts) == 1 else [str(c) for c in ckpts]
    if signatures:
        extra["signatures"] = signatures
    result = make_result(values, shas, time.perf_counter() - start, **extra)
    if results:
        write_result(results, result)
    return result, comparisons


def report(result: dict, comparisons: list[dict]) -> list[str]:
    """What `textgen eval` prints without --json: the comparison tables, else each signature and the scores."""
    from textgen.compare import format_comparison

    if comparisons:
        return [line for comparison in comparisons for line in format_comparison(comparison)]
    lines = [f"{name} signature: {sig}" for name, sig in result.get("signatures", {}).items()]
    return [*lines, ", ".join(f"{k} {v}" for k, v in result["metrics"].items())]
