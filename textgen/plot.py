"""`textgen plot`: learning curves from runs' metrics.csv files, several runs overlaid, as one PNG."""

from __future__ import annotations

import csv
from pathlib import Path

from textgen.errors import UserError


def read_metrics(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Column → [(step, value)] for every non-empty cell of a run's metrics.csv."""
    path = run_dir / "metrics.csv" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise UserError(f"no metrics.csv in '{run_dir}': give a run folder written by textgen train")
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("step", "epoch", "tokens", "seconds", "lr") and value not in ("", None):
                    series.setdefault(key, []).append((float(row["step"]), float(value)))
    return series


def plot_runs(run_dirs: list[Path], output: Path, labels: list[str] | None = None) -> list[str]:
    """Draw loss (train and valid) and every validation metric, one panel each; returns panel names."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("textgen plot needs matplotlib: pip install 'textgen[plot]'") from None
    runs = [(labels[i] if labels and i < len(labels) else d.name, read_metrics(d)) for i, d in enumerate(run_dirs)]
    panels = ["loss"] + sorted(
        {k for _, s in runs for k in s if k not in ("train_loss", "valid_loss", "tokens_per_s", "valid_ppl")}
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for (label, series), color in zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10):
        for ax, panel in zip(axes[0], panels):
            keys = ["train_loss", "valid_loss"] if panel == "loss" else [panel]
            for key in keys:
                if key in series:
                    x, y = zip(*series[key])
                    style = "-" if key != "train_loss" else ":"
                    marker = "o" if key.startswith("valid") else None
                    ax.plot(x, y, style, color=color, marker=marker, markersize=3, label=f"{label} {key}")
    for ax, panel in zip(axes[0], panels):
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return panels
