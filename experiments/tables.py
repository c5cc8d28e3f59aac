"""Helpers every study's table builder shares: reading result files, mean ± std cells, and a paired bootstrap's
difference and p taken from one file and checked against the scores it claims to compare.

Importable when a builder runs through `table` in experiments/lib.sh (PYTHONPATH=experiments)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def summarise(values: list[float]) -> dict:
    out = {"mean": round(statistics.mean(values), 2), "n": len(values), "values": values}
    if len(values) > 1:
        out["std"] = round(statistics.stdev(values), 2)
    return out


def fmt(cell: dict | None, digits: int = 2, signed: bool = False) -> str:
    """A summarise() cell as "mean ± std (n=N)", or the mean alone for one run; digits=0 for counts (a score
    that happens to be whole still shows two decimals), signed for differences."""
    if not cell:
        return "–"
    mean = f"{cell['mean']:{'+' if signed else ''}.{digits}f}"
    return f"{mean} ± {cell['std']:.{digits}f} (n={cell['n']})" if "std" in cell else mean


def checked_pair(
    versus: Path, base: str, system_hyp: str, base_score: float, system_score: float | None, metric: str, rerun: str
) -> tuple[float, float]:
    """A paired bootstrap's difference and p on `metric`, from one file, checked to compare the output `base` (a
    file name without .txt) with `system_hyp` (a path ending) as both are scored today (a re-run of either makes
    the file stale: the command `rerun` makes it again)."""
    pair = load(versus)
    base_file, system_file = pair["systems"]
    same = Path(base_file).name == f"{base}.txt" and ("/" + system_file).endswith("/" + system_hyp)
    assert same and f"sys1_{metric}" in pair["metrics"], f"{versus} compares other outputs or on another metric"
    fresh = pair["metrics"][f"sys0_{metric}"] == base_score and pair["metrics"][f"sys1_{metric}"] == system_score
    assert fresh, f"{versus} is stale: re-run {rerun}"
    return round(system_score - base_score, 2), pair["metrics"][f"sys1_{metric}_p_bootstrap"]
