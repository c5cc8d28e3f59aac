"""Device placement without a GPU: every tensor a step or a decoder creates must follow its inputs' device.

On a GPU, a tensor made without `device=` lands on the CPU and the step fails (or silently copies).
Here the model and data sit on the CPU while torch's *default* device is `meta`, so any such
tensor is a meta tensor, and any operation that receives one fails: the same bug, caught on a CPU.
"""

import contextlib

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from textgen.config import (
    DadConfig,
    DecodeConfig,
    E2EConfig,
    MixerConfig,
    ModelConfig,
    ObjectiveConfig,
    Recipe,
    TrainConfig,
)
from textgen.data.seqbatch import collate
from textgen.data.seqvocab import WordVocab
from textgen.decode.generate_lm import generate
from textgen.decode.search import beam_search, greedy_or_sample
from textgen.errors import UserError
from textgen.models.lm import RNNLM
from textgen.models.seq2seq import Seq2Seq
from textgen.objectives import OBJECTIVES
from textgen.objectives.base import Context
from textgen.tasks.lm import evaluate, loss_sum

VOCAB = WordVocab(("<pad>", "<unk>", "<s>", "</s>", "x", "y", "z"))


class _RejectMeta(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if any(isinstance(a, torch.Tensor) and a.is_meta for a in tree_leaves((args, kwargs))):
            raise AssertionError(f"{getattr(func, '__name__', func)} received a tensor made on the default device")
        return func(*args, **kwargs)


@contextlib.contextmanager
def default_device_trap():
    """Tensors made without device= become meta tensors, and using one raises."""
    with _RejectMeta(), torch.device("meta"):
        yield


def seq2seq(input_feeding: bool = False) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(layers=1, hidden=8, embed=6, dropout=0.1, input_feeding=input_feeding)
    return Seq2Seq(9, len(VOCAB), cfg).train()


def batch():
    return collate([[4, 5, 6], [7, 8], [4]], [[4, 5], [6, 4, 5, 6], [5]], [0, 1, 2])


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_step_makes_no_tensor_on_the_default_device(name):
    recipe = Recipe(
        task="seq2seq",
        model=ModelConfig(hidden=8),
        train=TrainConfig(label_smoothing=0.1),
        decode=DecodeConfig(max_len_a=0.0, max_len_b=4),
        objective=ObjectiveConfig(
            name=name,
            mixer=MixerConfig(T=2, xent_epochs=0, delta=1),
            dad=DadConfig(schedule="linear", max_p=1.0, ramp_epochs=0),
            e2e=E2EConfig(k=3),
        ),
    )
    model, data = seq2seq(), batch()  # host-side data: made before the default device changes
    objective = OBJECTIVES[name](Context(recipe, VOCAB, ["x y", "z x y z", "y"], steps_per_epoch=1))
    with default_device_trap():
        out = objective(model, data, step=1)
        out.loss_sum.backward()
    assert out.loss_sum.device.type == "cpu" and torch.isfinite(out.loss_sum)
    assert all(p.grad is None or p.grad.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize("input_feeding", [False, True])
def test_decoders_make_no_tensor_on_the_default_device(input_feeding):
    model = seq2seq(input_feeding).eval()
    b = batch()
    with default_device_trap():
        greedy = greedy_or_sample(model, b.src, b.src_lens, 0.0, 4)
        sampled = greedy_or_sample(
            model,
            b.src,
            b.src_lens,
            0.0,
            4,
            temperature=1.0,
            top_k=3,
            top_p=0.9,
            generator=torch.Generator(device="cpu").manual_seed(1),
        )
        beams = beam_search(model, b.src, b.src_lens, beam=3, nbest=2, max_len_a=0.0, max_len_b=4, no_repeat_ngram=2)
    assert len(greedy.tokens) == len(sampled.tokens) == len(beams.tokens) == 3


def test_lm_step_evaluation_and_sampling_make_no_tensor_on_the_default_device():
    torch.manual_seed(0)
    model = RNNLM(7, ModelConfig(cell="lstm", layers=2, hidden=8, embed=8, dropout=0.1))
    ids = torch.randint(0, 7, (64,))
    with default_device_trap():
        loss, _ = loss_sum(model, ids[:24].view(2, 12), ids[1:25].view(2, 12), model.init_state(2))
        loss.backward()
        value = evaluate(model, ids, batch_size=2, bptt=8)
        tokens = list(generate(model, [1, 2], 5, temperature=0.9, top_k=4, seed=3))
    assert torch.isfinite(loss) and value > 0 and len(tokens) == 5


def test_device_names_are_checked():
    from textgen.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device 99"):
            resolve_device("cuda:99")
    else:
        with pytest.raises(UserError, match="no CUDA device"):
            resolve_device("cuda")
