"""Model building blocks: the CPU dropout keeps nn.Dropout's distribution."""

import pytest
import torch

from textgen.errors import UserError
from textgen.models.dropout import Dropout


def test_dropout_keeps_each_unit_with_probability_1_minus_p_and_rescales_it():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    drop = Dropout(0.3).train()
    y = drop(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.005)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # unbiased, as nn.Dropout
    g = torch.ones_like(x, requires_grad=True)
    drop(g).sum().backward()
    assert g.grad.unique().tolist() == pytest.approx([0.0, 1 / 0.7])  # the same mask scales the gradient


def test_dropout_is_the_identity_in_eval_mode_and_at_p_zero():
    x = torch.randn(4, 5)
    assert Dropout(0.5).eval()(x) is x and Dropout(0.0).train()(x) is x


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_outside_0_1_is_a_user_error(p):
    with pytest.raises(UserError, match=r"model.dropout must be in \[0, 1\)"):
        Dropout(p)
