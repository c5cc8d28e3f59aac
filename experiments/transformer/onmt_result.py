"""Turn a peer-onmt.sh run folder (OpenNMT-py's own report and sacreBLEU files) into a textgen result file.

python experiments/transformer/onmt_result.py RUN_DIR OUT.json
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from textgen.data.registry import sha256_of
from textgen.results import make_result, write_result


def onmt_metrics(run: Path) -> dict[str, float]:
    """Test2016 BLEU greedy / beam 5, training target tokens/s and steps, as peer-onmt.sh's report states them,
    and validation BLEU at beam 5 where run.sh scored it."""
    report = (run / "report.txt").read_text(encoding="utf-8")
    metrics = {
        f"test_bleu4_{tag}": json.loads((run / f"bleu.{tag}.json").read_text())["score"] for tag in ("greedy", "beam5")
    }
    valid = run / "bleu.valid-beam5.json"  # run.sh's onmt_valid: the score the peer's schedule is chosen by
    if valid.is_file():
        metrics["valid_bleu4_beam5"] = json.loads(valid.read_text())["score"]
    patterns = {
        "train_seconds": r"train wall \(incl\. start-up\) : (\d+) s",
        "steps": r"checkpoint used\s+: .*\(step (\d+)\)",
        "tokens_per_s": r"target tok/s, mean of reports \(excl\. first\): (\d+)",
        "epochs": r"epochs at last log \(tokens\): ([\d.]+)",
    }
    for key, pattern in patterns.items():
        found = re.search(pattern, report)
        if found:
            metrics[key] = float(found.group(1))
    return metrics


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"
    shas = {f"multi30k/{p.name}": sha256_of(p) for p in sorted(data.glob("*.gz"))}
    versions = (run / "versions.txt").read_text().strip()
    arch = os.environ.get("ARCH", "transformer")
    schedule = f" LR={os.environ.get('LR', '0.5')} WARMUP={os.environ.get('WARMUP', '1000')}" if arch != "lstm" else ""
    command = f"ARCH={arch} TRAIN_SECONDS=1500{schedule} bash ../shared/tools/peer-onmt.sh (one thread, one core)"
    seconds = onmt_metrics(run).get("train_seconds", 0.0)
    write_result(out, make_result(onmt_metrics(run), shas, seconds, command=command, peer=versions))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
