"""Language-model behaviour: truncated BPTT, state carrying, learning, checkpoint round trip."""

import pytest
import torch

from textgen.config import DataConfig, ModelConfig, Recipe, TrainConfig, to_dict
from textgen.data.batching import batchify, num_windows, window
from textgen.data.vocab import CharVocab, WordVocab
from textgen.decode.generate_lm import generate
from textgen.models.lm import RNNLM
from textgen.tasks.lm import LMTask, load_model
from textgen.train import checkpoint


def tiny_model(cell="lstm", vocab=7, seed=0, **kw):
    torch.manual_seed(seed)
    return RNNLM(vocab, ModelConfig(**{"cell": cell, "layers": 2, "hidden": 12, "embed": 6, **kw}))


def lm_task(tmp_path, text, **train):
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    recipe = Recipe(
        data=DataConfig(corpus=str(path), holdout=0.1),
        model=ModelConfig(layers=1, hidden=32, embed=16),
        train=TrainConfig(**train),
    )
    torch.manual_seed(0)
    return LMTask(recipe)


def test_no_gradient_crosses_a_window_boundary(tmp_path):
    task = lm_task(tmp_path, "abcdefgh" * 50, batch_size=2, bptt=8)
    first = task.loss(0)
    assert all(s.grad_fn is None and not s.requires_grad for s in task.state)  # carried state is cut
    second = task.loss(1)
    first_params = torch.autograd.grad(second.loss_sum, list(task.model.parameters()), retain_graph=True)
    # the second window's loss depends on the first window only through carried values: its graph
    # must not reach back into the first window's graph
    with pytest.raises(RuntimeError):
        torch.autograd.grad(second.loss_sum, [first.loss_sum])
    assert any(g.abs().sum() > 0 for g in first_params)


def test_carried_state_matches_one_long_sequence():
    for cell in ("rnn", "lstm", "gru"):
        model = tiny_model(cell).eval()
        x = torch.randint(0, 7, (2, 30))
        whole, _ = model(x, model.init_state(2))
        state, pieces = model.init_state(2), []
        for chunk in x.split(7, dim=1):
            out, state = model(chunk, model.detach_state(state))
            pieces.append(out)
        torch.testing.assert_close(torch.cat(pieces, 1), whole, rtol=1e-5, atol=1e-6)


def test_batchify_windows_cover_the_stream_in_order():
    ids = torch.arange(103)
    streams = batchify(ids, 4)
    assert streams.shape == (4, 25)
    xs, ys = zip(*(window(streams, i, 6) for i in range(num_windows(streams, 6))))
    assert torch.equal(torch.cat(xs, 1), streams[:, :-1])
    assert torch.equal(torch.cat(ys, 1), streams[:, 1:])


def test_tiny_model_overfits_tiny_corpus(tmp_path):
    task = lm_task(tmp_path, "hello world\n" * 60, batch_size=4, bptt=10, eval_batch_size=1)
    opt = torch.optim.Adam(task.model.parameters(), lr=0.02)
    losses = []
    for step in range(30 * task.steps_per_epoch):
        out = task.loss(step)
        opt.zero_grad()
        (out.loss_sum / out.ntokens).backward()
        opt.step()
        losses.append(out.loss_sum.item() / out.ntokens)
    assert losses[0] > 1.5 and losses[-1] < 0.1
    assert task.validate()["valid_loss"] < 0.1
    vocab = task.vocab
    text = vocab.decode(list(generate(task.model, vocab.encode("hel"), 20, temperature=0)))
    assert text.startswith("lo world\nhello")


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model(tie_weights=False, dropout=0.0)
    vocab = CharVocab(tuple("abcdefg"))
    recipe = Recipe(model=model.cfg, train=TrainConfig())
    path = tmp_path / "m.pt"
    checkpoint.save(
        path, {"kind": "lm", "recipe": to_dict(recipe), "vocab": vocab.to_dict(), "model": model.state_dict()}
    )
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


def test_checkpoint_from_an_older_recipe_schema_still_loads(tmp_path):
    model = tiny_model()
    recipe = to_dict(Recipe(model=model.cfg))
    recipe["train"]["a_key_this_version_dropped"] = 1  # a key an older textgen wrote
    path = tmp_path / "old.pt"
    vocab = CharVocab(tuple("abcdefg"))
    checkpoint.save(path, {"kind": "lm", "recipe": recipe, "vocab": vocab.to_dict(), "model": model.state_dict()})
    loaded, _, loaded_recipe, _ = load_model(path)
    assert loaded_recipe.model == model.cfg


def test_char_vocabulary_is_built_from_the_training_split_and_maps_new_characters_to_unknown(tmp_path):
    """Held-out text does not shape the vocabulary; a character only it has is the unknown symbol, not a crash."""
    from textgen.data.vocab import UNK_CHAR

    task = lm_task(tmp_path, "abc abd\n" * 90 + "abZ\n" * 12, batch_size=2, bptt=8, eval_batch_size=1)
    assert "Z" not in task.vocab.index and set("abcd \n") <= set(task.vocab.symbols)
    index = task.vocab.index
    assert index[UNK_CHAR] in task.valid_ids.tolist()
    assert task.vocab.encode("aZ\n") == [index["a"], index[UNK_CHAR], index["\n"]]
    assert task.validate()["valid_loss"] > 0


def test_a_checkpoint_vocabulary_from_every_split_still_resumes_and_evaluates(tmp_path):
    """Checkpoints of char models whose vocabulary came from all splits (no unknown symbol) keep loading: a
    resumed run and eval encode with the checkpoint's vocabulary; a character it lacks is a one-line error."""
    from textgen.errors import UserError
    from textgen.tasks.lm import prepare_data

    text = "abc abd\n" * 90 + "abZ\n" * 12
    old = CharVocab(tuple(sorted(set(text))))
    fresh = lm_task(tmp_path, text, batch_size=2, bptt=8)
    assert fresh.vocab != old
    resumed = LMTask(fresh.recipe, old)
    assert resumed.vocab == old and max(resumed.valid_ids.tolist()) < len(old)
    assert prepare_data(fresh.recipe, old).ids["test"].tolist() == old.encode(fresh_test_text(fresh))
    with pytest.raises(UserError, match="lacks"):
        old.encode("aQ")


def fresh_test_text(task):
    from textgen.data.corpus import load_text_corpus

    return load_text_corpus(task.recipe.data.corpus, task.recipe.data.holdout).splits["test"]
