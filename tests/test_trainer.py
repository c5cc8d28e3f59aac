"""The training loop with a stand-in task: what the LR plateau follows, the wall-clock budget, logged means,
throughput, crashes and where a run stops."""

import csv
import io
import math
import time

import pytest
import torch
from rich.console import Console

from textgen.config import Recipe, TrainConfig
from textgen.train import distributed
from textgen.train.distributed import Dist
from textgen.train.loop import Loss, _mean_logs, train
from textgen.train.lr_schedule import LRSchedule

OUT_OF_MEMORY = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9000000000 bytes"


class RisingLossRisingBleu:
    """A task whose validation loss gets worse while its selection metric (BLEU) gets better, as under RL."""

    kind = "seq2seq"
    steps_per_epoch = 2
    sha256: dict = {}
    best_metric = "valid_bleu4"
    higher_is_better = True
    valid_columns = ["valid_loss", "valid_bleu4"]
    train_log_columns: list = []
    notes: list = []
    start_step = 0

    def __init__(self, validate_seconds=0.0, step_seconds=0.0, fail_at=-1, tokens=1, error=OUT_OF_MEMORY):
        self.model = torch.nn.Linear(2, 1)
        self.checks = 0
        self.validate_seconds = validate_seconds
        self.step_seconds, self.fail_at, self.tokens, self.error = step_seconds, fail_at, tokens, error

    def loss(self, step):
        if step == self.fail_at:
            raise RuntimeError(self.error)
        time.sleep(self.step_seconds)
        return Loss((self.model(torch.ones(1, 2)) ** 2).sum(), self.tokens, 1)

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


def run(tmp_path, task, console=None, resume=None, **train_cfg):
    train_cfg = {"log_every": 1, **train_cfg}
    recipe = Recipe(task="seq2seq", train=TrainConfig(optimizer="sgd", lr=0.1, **train_cfg))
    summary = train(task, recipe, tmp_path / "best.pt", tmp_path / "run", resume=resume, console=console)
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


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=300)


def test_tokens_per_s_after_a_validation_is_tokens_over_update_time(tmp_path):
    """A validation between two log rows must not shorten the time the row's tokens are divided by."""
    task = RisingLossRisingBleu(validate_seconds=0.2, step_seconds=0.03, tokens=100)
    run(tmp_path, task, max_steps=12, log_every=3, eval_every=2)
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv")) if r["train_loss"]]
    assert len(rows) == 4
    for before, after in zip(rows, rows[1:]):
        measured = (int(after["tokens"]) - int(before["tokens"])) / (float(after["seconds"]) - float(before["seconds"]))
        assert float(after["tokens_per_s"]) == pytest.approx(measured, rel=0.25)


def test_a_crash_after_a_checkpoint_says_how_to_resume(tmp_path):
    """An out-of-memory batch is a one-line error that names the resumable checkpoint it leaves."""
    from textgen.errors import UserError

    console = quiet_console()
    with pytest.raises(UserError, match=r"out of memory after step 4 .*--resume .*last\.pt \(step 4\)"):
        run(tmp_path, RisingLossRisingBleu(fail_at=4), console=console, max_steps=10, eval_every=2)
    kept = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert kept["train_state"]["step"] == 4
    summary, _ = run(tmp_path, RisingLossRisingBleu(), resume=kept, max_steps=10, eval_every=2)
    assert summary["metrics"]["steps"] == 10 and summary["stopped"] is None


def test_any_other_crash_keeps_its_traceback_and_names_the_checkpoint_to_resume(tmp_path):
    console = quiet_console()
    with pytest.raises(RuntimeError, match="a bug"):
        run(tmp_path, RisingLossRisingBleu(fail_at=4, error="a bug"), console=console, max_steps=10, eval_every=2)
    assert (
        f"training failed after step 4; resume with textgen train --resume {tmp_path / 'run' / 'last.pt'} (step 4)"
        in (console.file.getvalue())
    )


def test_a_crash_before_the_first_checkpoint_does_not_claim_one(tmp_path):
    from textgen.errors import UserError

    with pytest.raises(UserError) as error:
        run(tmp_path, RisingLossRisingBleu(fail_at=1), console=quiet_console(), max_steps=10, eval_every=5)
    assert "--resume" not in str(error.value) and not (tmp_path / "run" / "last.pt").exists()


def test_a_run_stopped_by_its_time_budget_says_so(tmp_path):
    console = quiet_console()
    task = RisingLossRisingBleu(step_seconds=0.05)
    summary, _ = run(tmp_path, task, console=console, max_steps=200, max_minutes=0.005)  # 0.3 s
    steps = summary["metrics"]["steps"]
    assert 0 < steps < 200
    assert summary["stopped"] == f"stopped on its time budget (train.max_minutes = 0.005) after {steps} of 200 updates"
    assert summary["stopped"] in console.file.getvalue()


def test_resuming_a_finished_run_says_no_steps_remain_instead_of_a_nan_loss(tmp_path):
    console = quiet_console()
    summary, _ = run(tmp_path, RisingLossRisingBleu(), max_steps=4, eval_every=2)
    assert summary["stopped"] is None
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    summary, _ = run(tmp_path, RisingLossRisingBleu(), console=console, resume=saved, max_steps=3, eval_every=2)
    shown = console.file.getvalue()
    assert "nan" not in shown and summary["metrics"]["steps"] == 4
    assert summary["stopped"] == "no steps remained: the checkpoint is at step 4 of 3" and summary["stopped"] in shown


def test_a_fine_tunes_steps_continue_from_its_parents(tmp_path):
    """metrics.csv counts global_step from the first run of the lineage; the checkpoint carries the offset on."""
    task = RisingLossRisingBleu()
    task.start_step = 100
    run(tmp_path, task, max_steps=4, eval_every=2)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["global_step"]) - int(r["step"]) for r in rows] == [100] * len(rows)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["start_step"] == 100


def test_notes_are_printed_once_at_the_start(tmp_path):
    console, task = quiet_console(), RisingLossRisingBleu()
    task.notes = ["initialised from parent.pt (step 7)"]
    run(tmp_path, task, console=console, max_steps=2)
    assert console.file.getvalue().count("initialised from parent.pt (step 7)") == 1


def test_checkpoints_get_the_permissions_the_umask_gives(tmp_path):
    """Run folders may live on shared storage: a checkpoint is as readable as any file the user creates."""
    import os

    from textgen.train import checkpoint

    old = os.umask(0o027)
    try:
        checkpoint.save(tmp_path / "c.pt", {"kind": "lm"})
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o640


def test_a_checkpoint_that_cannot_even_be_created_is_one_user_error(tmp_path, monkeypatch):
    """Out of quota or inodes, creating the temporary file fails before anything is written."""
    from textgen.errors import UserError
    from textgen.train import checkpoint

    def no_quota(*args, **kwargs):
        raise OSError(122, "Disk quota exceeded")

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", no_quota)
    with pytest.raises(UserError, match=r"saving checkpoint .* failed \(Disk quota exceeded\)"):
        checkpoint.save(tmp_path / "c.pt", {"kind": "lm"})
