"""`textgen plot`: panels in a grid, and a fine-tune's curves continuing its parent's steps."""

import csv

import pytest

from textgen.plot import plot_runs, read_metrics

pytest.importorskip("matplotlib")

BASE = ["step", "epoch", "tokens", "seconds", "lr", "train_loss", "valid_loss", "valid_ppl", "valid_bleu4"]
RL = ["s", "loss_xent", "loss_reinforce", "reward", "reward_nonzero", "baseline_mse"]


def write_run(folder, columns, steps, start_step=None):
    folder.mkdir()
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns + ([] if start_step is None else ["global_step"]))
        writer.writeheader()
        for step in steps:
            row = {key: 1.0 + step / 100 for key in columns} | {"step": step}
            writer.writerow(row | ({} if start_step is None else {"global_step": start_step + step}))
    return folder


def test_panels_are_laid_out_in_a_grid_and_a_fine_tune_continues_its_parents_steps(tmp_path):
    from matplotlib.image import imread

    parent = write_run(tmp_path / "xent", BASE, [10, 20, 30], start_step=0)
    child = write_run(tmp_path / "mixer", BASE + RL, [5, 10], start_step=30)
    panels = plot_runs([parent, child], tmp_path / "curves.png", ["xent", "mixer"])
    assert len(panels) == 8  # loss, valid_bleu4 and the six objective logs
    height, width = imread(tmp_path / "curves.png").shape[:2]
    assert width < 2.5 * height  # not 8 panels in one row, 11 times as wide as high
    assert [x for x, _ in read_metrics(child)["train_loss"]] == [35.0, 40.0]


def test_draw_puts_at_most_three_panels_in_a_row_and_no_empty_ones(tmp_path):
    from textgen.plot import draw

    child = write_run(tmp_path / "mixer", BASE + RL, [5, 10], start_step=30)
    figure, panels = draw([("mixer", read_metrics(child))])
    rows, columns = figure.axes[0].get_subplotspec().get_gridspec().get_geometry()
    assert (rows, columns) == (3, 3) and len(figure.axes) == len(panels) == 8
    loss = figure.axes[panels.index("loss")]
    assert [line.get_xdata().tolist() for line in loss.get_lines()][0] == [35.0, 40.0]


def test_a_run_written_without_global_step_plots_at_its_steps(tmp_path):
    run = write_run(tmp_path / "old", BASE, [10, 20])
    assert [x for x, _ in read_metrics(run)["train_loss"]] == [10.0, 20.0]
