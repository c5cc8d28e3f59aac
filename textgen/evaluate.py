"""`textgen eval`: score a checkpoint on a corpus split, or score hypothesis files against references."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from textgen import checkpoint
from textgen.config import DecodeConfig
from textgen.console import progress_bar, stderr_console
from textgen.data.corpus import training_corpus
from textgen.data.parallel import load_parallel, read_lines
from textgen.errors import UserError
from textgen.metrics import check_metrics, score
from textgen.paths import output_file

if TYPE_CHECKING:
    from textgen.decode.mbr import MbrChoice


def file_hashes(paths: list[Path]) -> dict[str, str]:
    """sha256 per scored file: a result from files (references often in a temp dir) still says what it scored."""
    from textgen.data.registry import sha256_of

    return {str(p): sha256_of(p) for p in paths}


def eval_files(hyp: Path, refs: list[Path], metrics: list[str]) -> tuple[dict, dict]:
    """Score a hypothesis file against one or more line-aligned reference files."""
    check_metrics(metrics)
    if not refs:
        raise UserError("--hyp needs at least one --ref file")
    return score(metrics, read_lines(hyp), [read_lines(r) for r in refs])


@contextmanager
def _sacrebleu_seed(seed: int | None):
    """sacrebleu's significance module reads its seed from $SACREBLEU_SEED (default 12345): set it for a call."""
    if seed is None:
        yield
        return
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = before


def compare_systems(
    hyps: list[Path], refs: list[Path], metric: str = "bleu4", bootstrap: int = 0, ar: int = 0, seed: int | None = None
) -> dict:
    """Compare systems on one test set with sacrebleu.significance.PairedTest; the first file is the baseline.
    BLEU is sacrebleu's own; ROUGE is rouge-score's, resampled per sentence by the same tests (`rouge_metric`).

    bootstrap > 0: paired bootstrap resampling with that many resamples (Koehn 2004; sacrebleu's default 1000),
    which also gives each system's bootstrap mean and 95% CI. ar > 0: paired approximate randomization with that
    many trials (Riezler & Maxwell 2005; sacrebleu's default 10000); run alone, the CI comes from 1000 bootstrap
    resamples, as sacrebleu computes it for AR. p-values are sacrebleu's: (c + 1) / (n + 1), c the resampled
    differences strictly larger than the observed one, so no test reports less than 1 / (n + 1).
    seed None: sacrebleu's own ($SACREBLEU_SEED, else 12345).

    Ties: sacrebleu (like MultEval, which it follows) counts only resampled differences strictly larger than the
    observed one. A system identical to the baseline therefore gets p = 1 / (n + 1), the smallest p there is, from
    both tests; and under AR so does a system that differs from the baseline in a single line, since every
    shuffle then reproduces the observed difference exactly. Each row carries `differing_lines` (lines unlike
    the baseline's) so such p-values can be read for what they are.

    Returns {"metric", "baseline", "seed", "paired_bootstrap", "paired_ar", "signatures": {test: signature},
    "systems": [{"hyp", "differing_lines", "score", "mean", "ci", "p_bootstrap", "p_ar"}]} (None where a test
    did not run)."""
    from sacrebleu.significance import PairedTest

    from textgen.metrics import sacrebleu_metric

    sacrebleu_metric(metric)  # a metric the paired tests can take, before any file is read
    if len(hyps) < 2:
        raise UserError("a paired test compares systems: give two or more --hyp files (the first is the baseline)")
    if not refs:
        raise UserError("--hyp needs at least one --ref file")
    if bootstrap < 0 or ar < 0:
        raise UserError(f"--paired-bootstrap and --paired-ar must be >= 1 (0: off), got {bootstrap} and {ar}")
    if not (bootstrap or ar):
        raise UserError(
            "comparing --hyp files needs a paired test: add --paired-bootstrap N (e.g. 1000) "
            "and/or --paired-ar N (e.g. 10000)"
        )
    if seed is not None and seed < 1:
        raise UserError(f"--seed must be >= 1 for paired tests (sacrebleu takes 0 as no seed), got {seed}")
    streams = [read_lines(r) for r in refs]
    systems = [read_lines(h) for h in hyps]
    for path, lines in [*zip(refs[1:], streams[1:]), *zip(hyps, systems)]:
        if len(lines) != len(streams[0]):
            raise UserError(
                f"{path} has {len(lines)} lines but {refs[0]} has {len(streams[0])}: the files must be line-aligned"
            )
    named = [(str(h), lines) for h, lines in zip(hyps, systems)]
    out = {
        "metric": metric,
        "baseline": str(hyps[0]),
        "seed": None,
        "paired_bootstrap": bootstrap or None,
        "paired_ar": ar or None,
        "signatures": {},
        "systems": [
            {
                "hyp": str(h),
                "differing_lines": sum(a != b for a, b in zip(lines, systems[0])),
                "score": None,
                "mean": None,
                "ci": None,
                "p_bootstrap": None,
                "p_ar": None,
            }
            for h, lines in zip(hyps, systems)
        ],
    }
    for kind, test_type, n in (("bootstrap", "bs", bootstrap), ("ar", "ar", ar)):
        if not n:
            continue
        # AR alone gets sacrebleu's bootstrap CI (1000 resamples); the bootstrap test makes its own (and would
        # print a confidence count in place of its resample count in its signature)
        confidence = 1000 if kind == "ar" and not bootstrap else -1
        with _sacrebleu_seed(seed):
            test = PairedTest(
                named,
                {metric: sacrebleu_metric(metric)},
                references=streams,
                test_type=test_type,
                n_samples=n,
                n_ar_confidence=confidence,
            )
            signatures, scores = test()
        out["seed"] = test._seed
        (name,) = [k for k in scores if k != "System"]
        out["signatures"][f"paired_{kind}"] = str(signatures[name])
        for row, result in zip(out["systems"], scores[name]):
            row["score"] = result.score
            if result.mean is not None and row["mean"] is None:
                row["mean"], row["ci"] = float(result.mean), float(result.ci)
            row[f"p_{kind}"] = result.p_value
    return out


def comparison_values(comparison: dict) -> dict:
    """Flat numbers for a results file: sysI_METRIC, sysI_METRIC_mean, _ci95, _p_bootstrap, _p_ar, and
    sysI_differing_lines (sys0: the baseline)."""
    m, values = comparison["metric"], {}
    for i, row in enumerate(comparison["systems"]):
        key = f"sys{i}_{m}"
        if i:
            values[f"sys{i}_differing_lines"] = row["differing_lines"]
        values[key] = round(row["score"], 2)
        if row["mean"] is not None:
            values[f"{key}_mean"], values[f"{key}_ci95"] = round(row["mean"], 2), round(row["ci"], 2)
        for test in ("bootstrap", "ar"):
            if i and row[f"p_{test}"] is not None:
                values[f"{key}_p_{test}"] = round(row[f"p_{test}"], 4)
    return values


def format_comparison(comparison: dict) -> list[str]:
    """The table `textgen eval` prints: one line per system, its score, bootstrap mean ± 95% CI, p-values."""
    m = comparison["metric"]
    lines = [f"{m} signature ({kind.replace('_', ' ')}): {sig}" for kind, sig in comparison["signatures"].items()]
    tests = [t for t in ("bootstrap", "ar") if comparison[f"paired_{t}"]]
    width = max(len(row["hyp"]) for row in comparison["systems"]) + len(" (baseline)")
    header = f"{'system':<{width}}  {'lines ≠ base':>12}  {m:>7}  {'mean ± 95% CI':>15}" + "".join(
        f"  {'p (' + ('bootstrap' if t == 'bootstrap' else 'AR') + ')':>13}" for t in tests
    )
    lines.append(header)
    for i, row in enumerate(comparison["systems"]):
        name = row["hyp"] + (" (baseline)" if i == 0 else "")
        ci = f"{row['mean']:.2f} ± {row['ci']:.2f}" if row["mean"] is not None else "-"
        ps = "".join(f"  {'-' if i == 0 else format(row[f'p_{t}'], '.4f'):>13}" for t in tests)
        differ = "-" if i == 0 else str(row["differing_lines"])
        lines.append(f"{name:<{width}}  {differ:>12}  {row['score']:>7.2f}  {ci:>15}{ps}")
    for row in comparison["systems"][1:]:  # sacrebleu counts only strictly larger differences: ties look significant
        if row["differing_lines"] == 0:
            lines.append(
                f"note: {row['hyp']} is line for line the baseline: sacrebleu gives identical systems its "
                "smallest p, 1/(n+1), which means nothing here"
            )
        elif row["differing_lines"] == 1 and comparison["paired_ar"]:
            lines.append(
                f"note: {row['hyp']} differs from the baseline in one line: every AR shuffle ties the "
                "observed difference and sacrebleu counts only larger ones, so its AR p means nothing here"
            )
    return lines


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
    from textgen.lm import evaluate, load_model, metrics_from_loss, prepare_data

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


def eval_seq2seq(
    ckpt: Path,
    data: str | None,
    split: str,
    metrics: list[str],
    hyp_out: Path | None,
    device: torch.device,
    seed: int | None = None,
    mbr: int | None = None,
    **options,
) -> tuple[dict, dict, dict, Path | None]:
    """Decode a split, score the hypotheses against the reference (and all references), and write them where
    `hyp_out` says (see `hypotheses_path`); returns the metrics, the data's sha256s, the metric signatures and
    the file written (None: none asked for).

    `options` (beam, batch_size, precision, mbr_sampling, ...; None: the recipe's) go onto the checkpoint's
    [decode] as for `textgen decode` (decode/settings.py resolve): mbr=N decodes by MBR over N sampled
    candidates per source (textgen/decode/mbr.py) instead of beam search, as does a recipe's decode.mbr."""
    from textgen.decode import settings
    from textgen.decode.dispatch import decode_sources, work_items
    from textgen.seq2seq import encode_sources, load_model

    check_metrics(metrics)
    model, vocabs, recipe, payload = load_model(ckpt, device)
    cfg = settings.resolve(recipe.decode, device, seed=seed, mbr=mbr, nbest=1, **options)
    corpus_name = data or training_corpus(payload, "seq2seq", recipe.data.corpus, split)
    corpus = load_parallel(corpus_name, only=split)  # the split alone, not the training text
    if not data:
        warn_if_changed(ckpt, payload, corpus.sha256)
    part = corpus.splits[split]
    hyp_path = hypotheses_path(hyp_out, ckpt, data, split, decoder_name(cfg)) if hyp_out else None
    sources = encode_sources(vocabs, part.sources, recipe.data.max_source_tokens)
    start = time.perf_counter()
    with progress_bar(f"decode {split}", work_items(cfg, len(sources))) as advance:
        decoded = decode_sources(model, vocabs.tgt.decode, sources, cfg, advance=advance)
    hyps = [d.text for d in decoded]
    seconds = time.perf_counter() - start
    if hyp_path:
        try:
            hyp_path.write_text("".join(h + "\n" for h in hyps))
        except OSError as exc:
            raise UserError(f"could not write the hypotheses to '{hyp_path}' ({exc.strerror})") from None
    refs = [[vocabs.tgt.normalize(t) for t in stream] for stream in (part.targets, *part.extra_refs)]  # as outputs
    values, signatures = score(metrics, hyps, refs[:1])
    if part.extra_refs:
        multi, _ = score(metrics, hyps, refs)
        values.update({f"{k}_multiref": v for k, v in multi.items()})
    values.update(decoder_values(cfg, [d.choice for d in decoded]) if cfg.mbr.samples else {"beam": cfg.beam})
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
    return values, corpus.sha256, signatures, hyp_path


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


def hypotheses_path(hyp_out: str | Path, ckpt: Path, data: str | None, split: str, decoder: list[str]) -> Path:
    """`hyp_out` itself, or inside a folder (an existing one, or a path ending in '/') a file named for the
    checkpoint, the corpus (when --data names another), the split and every setting that shapes the output
    (`decoder`), so that evals with other settings never overwrite each other's; checked before decoding."""
    text = str(hyp_out)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        corpus = ""
        if data is not None:  # a registry name as it is, file paths by their digest
            corpus = (data if re.fullmatch(r"[\w.-]+", data) else hashlib.sha256(data.encode()).hexdigest()[:8]) + "."
        text = str(Path(text) / f"{ckpt.stem}.{corpus}{split}.{'_'.join(decoder)}.hyp")
    return output_file(text, "--hyp-out", "hyps.txt")


def checkpoint_kind(ckpt: Path) -> str:
    return checkpoint.load(ckpt)["kind"]
