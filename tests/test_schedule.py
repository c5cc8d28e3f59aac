import pytest
import torch

from textgen.config import TrainConfig
from textgen.train.lr_schedule import LRSchedule, build_optimizer, load_optimizer_state


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


def test_adam_is_fused_on_cpu_and_a_resume_keeps_this_runs_choice():
    """A checkpoint's optimizer groups carry their own `fused` flag; resuming one written before the fused
    kernel (fused None) must not switch it off, and the update stays Adam's."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    grads = [torch.randn_like(p) for p in params]
    fused = build_optimizer([{"params": params}], TrainConfig(optimizer="adam", lr=0.1))
    assert fused.param_groups[0]["fused"] is True
    old = torch.optim.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.1)  # as before: unfused
    for opt in (fused, old):
        for p, g in zip(opt.param_groups[0]["params"], grads):
            p.grad = g.clone()
        opt.step()
    for a, b in zip(fused.param_groups[0]["params"], old.param_groups[0]["params"]):
        torch.testing.assert_close(a, b)  # the same update rule
    saved = old.state_dict()
    assert saved["param_groups"][0]["fused"] is None
    load_optimizer_state(fused, saved)
    assert fused.param_groups[0]["fused"] is True and fused.state_dict()["state"][0]["step"] == 1
