"""Score hypothesis files against references, and compare systems' files by paired significance tests
(sacrebleu's paired bootstrap and approximate randomization): `textgen eval --hyp`."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from textgen.data.parallel import read_lines
from textgen.errors import UserError
from textgen.metrics import check_metrics, score


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


def _checked_inputs(
    hyps: list[Path], refs: list[Path], metric: str, bootstrap: int, ar: int, seed: int | None
) -> tuple[list[list[str]], list[list[str]]]:
    """compare_systems' settings checked, then the reference streams and the systems' lines, line-aligned."""
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
    return streams, systems


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

    streams, systems = _checked_inputs(hyps, refs, metric, bootstrap, ar, seed)
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


def score_files(
    hyps: list[Path], refs: list[Path], metrics: list[str], bootstrap: int = 0, ar: int = 0, seed: int | None = None
) -> tuple[dict, dict, dict, list[dict]]:
    """`textgen eval --hyp`: one file's scores, or several files compared (the first is the baseline) when
    more than one is given or a paired test is asked for. Returns values, the files' sha256, the metrics'
    signatures and the comparisons (none for a single file)."""
    if len(hyps) == 1 and not (bootstrap or ar):
        values, signatures = eval_files(hyps[0], refs, metrics)
        return values, file_hashes([*hyps, *refs]), signatures, []
    values, signatures, comparisons = {}, {}, []
    for name in metrics:
        comparisons.append(compare_systems(hyps, refs, name, bootstrap, ar, seed))
        values.update(comparison_values(comparisons[-1]))
        signatures.update({f"{name} {k}": v for k, v in comparisons[-1]["signatures"].items()})
    return values, file_hashes([*hyps, *refs]), signatures, comparisons  # hashed after scoring: it names bad files
