"""Language-model behaviour: truncated BPTT, state carrying, learning, checkpoint round trip."""

import torch

from textgen import checkpoint
from textgen.config import ModelConfig, Recipe, TrainConfig, to_dict
from textgen.data.batching import batchify, num_windows, window
from textgen.data.vocab import CharVocab, WordVocab
from textgen.decode.generate_lm import generate
from textgen.lm import load_model, train_step
from textgen.models.lm import RNNLM, detach_state


def tiny_model(cell="lstm", vocab=7, seed=0, **kw):
    torch.manual_seed(seed)
    return RNNLM(vocab, ModelConfig(**{"cell": cell, "layers": 2, "hidden": 12, "embed": 6, **kw}))


def test_no_gradient_crosses_a_window_boundary():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randint(0, 7, (3, 8))
    state = model.init_state(3)
    _, state = train_step(model, opt, x, x, state, clip=1.0)
    assert all(not s.requires_grad and s.grad_fn is None for s in state)
    # and the raw forward state does carry a graph, so the check above is not vacuous
    _, live = model(x, model.init_state(3))
    assert live[0].grad_fn is not None and detach_state(live)[0].grad_fn is None


def test_carried_state_matches_one_long_sequence():
    for cell in ("rnn", "lstm", "gru"):
        model = tiny_model(cell).eval()
        x = torch.randint(0, 7, (2, 30))
        whole, _ = model(x, model.init_state(2))
        state, pieces = model.init_state(2), []
        for chunk in x.split(7, dim=1):
            out, state = model(chunk, detach_state(state))
            pieces.append(out)
        torch.testing.assert_close(torch.cat(pieces, 1), whole, rtol=1e-5, atol=1e-6)


def test_batchify_windows_cover_the_stream_in_order():
    ids = torch.arange(103)
    streams = batchify(ids, 4)
    assert streams.shape == (4, 25)
    xs, ys = zip(*(window(streams, i, 6) for i in range(num_windows(streams, 6))))
    assert torch.equal(torch.cat(xs, 1), streams[:, :-1])
    assert torch.equal(torch.cat(ys, 1), streams[:, 1:])


def test_tiny_model_overfits_tiny_corpus():
    vocab = CharVocab.build(["hello world\n"])
    ids = torch.tensor(vocab.encode("hello world\n" * 40))
    streams = batchify(ids, 4)
    torch.manual_seed(0)
    model = RNNLM(len(vocab), ModelConfig(layers=1, hidden=32, embed=16))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for epoch in range(30):
        state = model.init_state(4)
        for i in range(num_windows(streams, 10)):
            x, y = window(streams, i, 10)
            loss, state = train_step(model, opt, x, y, state, clip=5.0)
            losses.append(loss)
    assert losses[0] > 2.0 and losses[-1] < 0.1
    text = vocab.decode(list(generate(model, vocab.encode("hel"), 20, temperature=0)))
    assert text.startswith("lo world\nhello")


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model(tie_weights=False, dropout=0.0)
    vocab = CharVocab(tuple("abcdefg"))
    recipe = Recipe(model=model.cfg, train=TrainConfig())
    path = tmp_path / "m.pt"
    checkpoint.save(path, {"kind": "lm", "recipe": to_dict(recipe), "vocab": vocab.to_dict(), "model": model.state_dict()})
    loaded, loaded_vocab, loaded_recipe, _ = load_model(path)
    x = torch.randint(0, 7, (2, 9))
    model.eval()
    assert torch.equal(model(x, model.init_state(2))[0], loaded(x, loaded.init_state(2))[0])
    assert loaded_vocab == vocab and loaded_recipe == recipe
    assert list(generate(model, [1], 15, seed=3)) == list(generate(loaded, [1], 15, seed=3))


def test_tied_weights_share_one_matrix():
    model = tiny_model(tie_weights=True, embed=0)
    assert model.proj.weight is model.embedding.weight


def test_word_vocab_ptb_conventions():
    vocab = WordVocab.build("a b a\nb a c\n", min_freq=2)
    assert vocab.symbols[:2] == ("<unk>", "<eos>") and set(vocab.symbols[2:]) == {"a", "b"}
    ids = vocab.encode("a c\n")
    assert vocab.decode(ids) == "a <unk>\n"
