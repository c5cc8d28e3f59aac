import pytest

from textgen.config import TrainConfig
from textgen.schedule import LRSchedule


def test_zaremba_step_schedule():
    s = LRSchedule(TrainConfig(lr=1.0, lr_schedule="step", decay_after_epochs=4, decay_factor=0.5), 10, 130)
    per_epoch = [s.lr(epoch * 10) for epoch in range(7)]
    assert per_epoch == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    assert s.lr(39) == 1.0 and s.lr(40) == 0.5


def test_cosine_with_warmup_reaches_floor():
    s = LRSchedule(TrainConfig(lr=2.0, lr_schedule="cosine", warmup_steps=10, min_lr_ratio=0.1), 50, 110)
    assert s.lr(0) == pytest.approx(0.2) and s.lr(9) == pytest.approx(2.0)
    assert s.lr(10) == pytest.approx(2.0) and s.lr(110) == pytest.approx(0.2)
    assert s.lr(60) == pytest.approx(1.1)


def test_plateau_decays_after_patience_and_round_trips():
    s = LRSchedule(TrainConfig(lr=1.0, lr_schedule="plateau", patience=1, decay_factor=0.5), 10, 100)
    assert [s.on_validation(v) for v in (3.0, 2.0, 2.5, 2.4, 2.6)] == [False, False, False, True, False]
    assert s.lr(0) == 0.5
    again = LRSchedule(s.cfg, 10, 100)
    again.load_state_dict(s.state_dict())
    assert again.lr(5) == s.lr(5) and again.best == 2.0
