"""`textgen plot`: learning curves from runs' metrics.csv files, several runs overlaid, as one PNG."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from textgen.errors import UserError

MAX_COLUMNS = 3  # panels per row: a fine-tune's objective logs add six
NOT_CURVES = ("step", "global_step", "epoch", "tokens", "seconds", "lr")


def read_metrics(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Column → [(step, value)] for every non-empty cell of a run's metrics.csv.

    The step is the row's global_step where the run wrote one (a fine-tune's steps go on from its init_from
    parent's), else its own step."""
    path = run_dir / "metrics.csv" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise UserError(f"no metrics.csv in '{run_dir}': give a run folder written by textgen train")
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row.get("global_step") or row["step"])
            for key, value in row.items():
                if key not in NOT_CURVES and value not in ("", None):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def draw(runs: list[tuple[str, dict[str, list[tuple[float, float]]]]]):
    """A figure with loss (train and valid) and every other logged value, one panel each, in rows of at most
    MAX_COLUMNS; returns (figure, panel names)."""
    import matplotlib.pyplot as plt

    panels = ["loss"] + sorted(
        {k for _, s in runs for k in s if k not in ("train_loss", "valid_loss", "tokens_per_s", "valid_ppl")}
    )
    columns = min(MAX_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        fig.delaxes(ax)
    axes = axes.flat[: len(panels)]
    for (label, series), color in zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10):
        for ax, panel in zip(axes, panels):
            keys = ["train_loss", "valid_loss"] if panel == "loss" else [panel]
            for key in keys:
                if key in series:
                    x, y = zip(*series[key])
                    style = "-" if key != "train_loss" else ":"
                    marker = "o" if key.startswith("valid") else None
                    ax.plot(x, y, style, color=color, marker=marker, markersize=3, label=f"{label} {key}")
    for ax, panel in zip(axes, panels):
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, panels


def plot_runs(run_dirs: list[Path], output: Path, labels: list[str] | None = None) -> list[str]:
    """Draw the runs' curves into the PNG `output`; returns the panel names."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("textgen plot needs matplotlib: pip install 'textgen[plot]'") from None
    runs = [(labels[i] if labels and i < len(labels) else d.name, read_metrics(d)) for i, d in enumerate(run_dirs)]
    fig, panels = draw(runs)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return panels
