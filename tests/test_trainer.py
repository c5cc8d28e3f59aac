"""The training loop with a stand-in task: what the LR plateau follows, the wall-clock budget, logged means."""

import math
import time

import torch

from textgen import distributed
from textgen.config import Recipe, TrainConfig
from textgen.distributed import Dist
from textgen.schedule import LRSchedule
from textgen.trainer import Loss, _mean_logs, train


class RisingLossRisingBleu:
    """A task whose validation loss gets worse while its selection metric (BLEU) gets better, as under RL."""

    kind = "seq2seq"
    steps_per_epoch = 2
    sha256: dict = {}
    best_metric = "valid_bleu4"
    higher_is_better = True
    valid_columns = ["valid_loss", "valid_bleu4"]
    train_log_columns: list = []

    def __init__(self, validate_seconds: float = 0.0):
        self.model = torch.nn.Linear(2, 1)
        self.checks = 0
        self.validate_seconds = validate_seconds

    def loss(self, step):
        return Loss((self.model(torch.ones(1, 2)) ** 2).sum(), 1, 1)

    def trainable_modules(self):
        return [self.model]

    def param_groups(self):
        return [{"params": list(self.model.parameters())}]

    def validate(self):
        self.checks += 1
        time.sleep(self.validate_seconds)
        return {"valid_loss": 1.0 + self.checks, "valid_bleu4": 10.0 + self.checks}

    def vocab_dict(self):
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state, resharded=False):
        pass

    def describe(self):
        return "stand-in"


def run(tmp_path, task, **train_cfg):
    recipe = Recipe(task="seq2seq", train=TrainConfig(optimizer="sgd", lr=0.1, log_every=1, **train_cfg))
    summary = train(task, recipe, tmp_path / "best.pt", tmp_path / "run")
    lrs = [line.split(",")[4] for line in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    return summary, [float(x) for x in lrs]


def test_plateau_follows_the_selection_metric_not_the_loss(tmp_path):
    summary, lrs = run(
        tmp_path,
        RisingLossRisingBleu(),
        max_steps=10,
        eval_every=1,
        lr_schedule="plateau",
        patience=0,
        decay_factor=0.5,
    )
    assert summary["metrics"]["best_valid_bleu4"] == 20.0
    assert set(lrs) == {0.1}  # BLEU improved at every check: no decay, although the loss rose every time


def test_plateau_decays_when_a_higher_is_better_metric_stalls():
    s = LRSchedule(
        TrainConfig(lr=1.0, lr_schedule="plateau", patience=0, decay_factor=0.5), 10, 100, higher_is_better=True
    )
    assert [s.on_validation(v) for v in (30.0, 31.0, 30.5, 32.0, 31.9)] == [False, False, True, False, True]
    assert s.lr(0) == 0.25 and s.best == 32.0


def test_max_minutes_is_wall_clock_with_validation_included(tmp_path):
    task = RisingLossRisingBleu(validate_seconds=0.4)
    started = time.perf_counter()
    summary, _ = run(tmp_path, task, max_steps=200, eval_every=1, max_minutes=1.0 / 60)
    assert time.perf_counter() - started < 40  # excluding validation, the budget would last all 200 steps (80 s)
    assert task.checks <= 4 and summary["metrics"]["steps"] <= 4  # 1 s of budget, 0.4 s per validation


def test_objective_logs_are_averaged_over_all_ranks_steps(monkeypatch):
    """Under torchrun each column is the mean over every rank's steps, like train_loss, not rank 0's alone."""
    other_rank = {"reward": [0.9, 0.7], "baseline_mse": [0.5]}  # this rank logged no baseline_mse... the other did

    def all_sum(d, values):
        columns = ["reward", "baseline_mse", "s"]
        theirs = []
        for key in columns:
            theirs += [sum(other_rank.get(key, [])), len(other_rank.get(key, []))]
        return [a + b for a, b in zip(values, theirs)]

    monkeypatch.setattr(distributed, "all_sum", all_sum)
    means = _mean_logs(Dist(rank=0, world=2), {"reward": [0.1, 0.3]}, ["reward", "baseline_mse", "s"])
    assert means == {"reward": 0.5, "baseline_mse": 0.5}
    assert "s" not in means and not math.isnan(means["reward"])
