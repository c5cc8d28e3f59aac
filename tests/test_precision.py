"""fp16 loss scaling, exercised on the CPU: a GradScaler forced on around fp32 arithmetic.

fp16 itself needs CUDA, but the trainer's part — scale, unscale before clipping, step, update,
and the scale saved in and restored from checkpoints — is the same code on any device.
"""

import pytest
import torch

import textgen.train.loop as trainer

LR_CLIP = ("--set", "train.clip=0.05", "--set", "train.max_steps=6", "--set", "train.eval_every=3")


def forced_scaler(monkeypatch, **kwargs):
    made = []

    def make(precision, device):
        made.append(torch.amp.GradScaler("cpu", **kwargs))
        return made[-1]

    monkeypatch.setattr(trainer, "grad_scaler", make)
    return made


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_scaled_training_takes_the_same_steps_as_unscaled(cli, tiny_recipe, tmp_path, monkeypatch):
    """Power-of-two scales are exact in fp32, and clipping must see the unscaled gradients."""
    assert cli("train", "-r", tiny_recipe, "-o", "plain.pt", "--run-dir", "a", *LR_CLIP).code == 0
    made = forced_scaler(monkeypatch, init_scale=2.0**16)
    assert cli("train", "-r", tiny_recipe, "-o", "scaled.pt", "--run-dir", "b", *LR_CLIP).code == 0
    assert made and made[0].get_scale() == 2.0**16  # it really was in the loop (no overflow, no growth yet)
    plain, scaled = weights(tmp_path / "plain.pt"), weights(tmp_path / "scaled.pt")
    for name in plain:
        torch.testing.assert_close(scaled[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("clip", ["0.0", "5.0"])  # clip 0: the scaler hands its scale to the fused kernel itself
def test_a_step_with_non_finite_gradients_is_skipped_and_the_scale_backs_off(
    cli, tiny_recipe, tmp_path, monkeypatch, clip
):
    import textgen.tasks.lm as lm

    made = forced_scaler(monkeypatch, init_scale=2.0**16)
    real_loss = lm.loss_sum

    def overflowing_gradient(model, *args):  # value unchanged, gradient of the output bias NaN (sqrt'(0) * 0)
        loss, state = real_loss(model, *args)
        return loss + torch.sqrt(model.proj.bias.sum() * 0.0), state

    monkeypatch.setattr(lm, "loss_sum", overflowing_gradient)
    assert (
        cli(
            "train",
            "-r",
            tiny_recipe,
            "-o",
            "m.pt",
            "--run-dir",
            "run",
            "--set",
            "train.max_steps=1",
            "--set",
            "train.eval_every=1",
            "--set",
            f"train.clip={clip}",
        ).code
        == 0
    )
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]
    state = list(saved["optimizer"]["state"].values())
    assert state or not saved["optimizer"]["param_groups"][0]["fused"]  # the fused kernel creates its state
    assert all(float(s["step"]) == 0 and not s["exp_avg"].any() and not s["exp_avg_sq"].any() for s in state), (
        "the step must not reach Adam"
    )
    assert saved["scaler"]["scale"] == made[0].get_scale() == 2.0**15
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "run" / "last.pt").values())


def test_resume_restores_the_loss_scale(cli, tiny_recipe, tmp_path, monkeypatch):
    made = forced_scaler(monkeypatch, init_scale=2.0**10, growth_interval=1)  # the scale doubles every good step
    args = ("-r", tiny_recipe, "-o", "m.pt", "--run-dir", "run", "--set", "train.eval_every=3")
    assert cli("train", *args, "--set", "train.max_steps=3").code == 0
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["scaler"]["scale"] == 2.0**13
    assert cli("train", *args, "--set", "train.max_steps=6", "--resume", "run/last.pt").code == 0
    assert made[-1].get_scale() == 2.0**16, "a resumed run continues from the saved scale, not the initial one"


def test_bf16_on_a_cpu_without_a_bf16_lstm_is_refused_for_models_with_an_lstm_alone(monkeypatch):
    """oneDNN's missing bf16 LSTM is the only reason to refuse bf16 on a CPU: a Transformer has no LSTM
    (tests/test_cli_lm.py trains one in bf16 on any CPU); a model not known yet is assumed to have one."""
    import textgen.precision as precision
    from tests.conftest import tiny_transformer
    from textgen.config import ModelConfig
    from textgen.errors import UserError
    from textgen.models import build_model

    monkeypatch.setattr(precision, "cpu_runs_bf16_lstm", lambda: False)  # as on an AVX2-only CPU
    cpu = torch.device("cpu")
    recurrent = build_model(ModelConfig(layers=1, hidden=8, embed=8), "seq2seq", 10, 10)
    for model in (recurrent, None):
        with pytest.raises(UserError, match="bf16 needs a CPU with AVX512-BF16 or AMX for this model's LSTM"):
            precision.check_precision("bf16", cpu, model)
    for model in (tiny_transformer("lm", 10), tiny_transformer("seq2seq", 10, 10)):
        precision.check_precision("bf16", cpu, model)
    monkeypatch.setattr(precision, "cpu_runs_bf16_lstm", lambda: True)  # AVX512-BF16 or AMX: any model
    precision.check_precision("bf16", cpu, recurrent)
