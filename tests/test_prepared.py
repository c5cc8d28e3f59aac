"""Prepared corpora: the memory-mapped path gives exactly the data, batches and losses of in-memory encoding,
and a second run reuses the folder instead of tokenizing again."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ARCHS, arch_sets
from tests.test_data import needs_mirror
from textgen.config import load_recipe
from textgen.data.seqbatch import collate, token_budget_batches


def per_example_batches(src_lens, tgt_lens, max_tokens, generator=None):
    """The token-budget rule written example by example (textgen's loader before prepared arrays)."""
    n = len(src_lens)
    noise = torch.rand(n, generator=generator).tolist() if generator is not None else [0.0] * n
    order = sorted(range(n), key=lambda i: (src_lens[i], tgt_lens[i], noise[i]))
    batches, current, longest = [], [], 0
    for i in order:
        size = max(src_lens[i], tgt_lens[i] + 1)
        if current and max(longest, size) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def test_batch_plan_gives_the_per_example_rules_batches():
    for trial in range(200):
        rng = random.Random(trial)
        n = rng.randint(1, 200)
        src = [rng.randint(1, rng.choice([3, 12, 60])) for _ in range(n)]
        tgt = [rng.randint(0, rng.choice([3, 12, 60])) for _ in range(n)]
        budget = rng.choice([1, 7, 50, 400])
        assert token_budget_batches(src, tgt, budget) == per_example_batches(src, tgt, budget), trial
        g1, g2 = (torch.Generator().manual_seed(trial) for _ in range(2))
        assert token_budget_batches(src, tgt, budget, g1) == per_example_batches(src, tgt, budget, g2), trial
    # lengths in the tens of thousands (sort keys past float32 noise's resolution), many ties
    src, tgt = [30_000 + i % 3 for i in range(300)], [29_000 + i % 2 for i in range(300)]
    g1, g2 = (torch.Generator().manual_seed(0) for _ in range(2))
    assert token_budget_batches(src, tgt, 120_000, g1) == per_example_batches(src, tgt, 120_000, g2)


def in_memory_batches(task, train_pairs, epoch):
    """The epoch's batches built as the in-memory loader built them, from the lines and the task's vocabulary."""
    d = task.recipe.data
    src = [(task.vocabs.src.encode(s) or [1])[: d.max_source_tokens or None] for s, _ in train_pairs]
    tgt = [task.vocabs.tgt.encode(t) for _, t in train_pairs]
    keep = [i for i in range(len(src)) if tgt[i] and (not d.max_len or max(len(src[i]), len(tgt[i])) <= d.max_len)]
    src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
    g = torch.Generator().manual_seed(task.recipe.train.seed * 1000 + epoch)
    batches = per_example_batches([len(s) for s in src], [len(t) for t in tgt], task.budget, g)
    return [collate([src[i] for i in ids], [tgt[i] for i in ids], ids) for ids in batches]


def assert_same_batches(task, train_pairs, epochs=2):
    for epoch in range(epochs):
        expected = in_memory_batches(task, train_pairs, epoch)
        assert len(expected) == task.steps_per_epoch
        for index, want in enumerate(expected):
            got = task._batch(epoch * task.steps_per_epoch + index)
            for name in ("src", "src_lens", "tgt_in", "tgt_out", "index"):
                assert torch.equal(getattr(got, name), getattr(want, name)), (epoch, index, name)


def read_pairs(path_spec: str):
    src, tgt = path_spec.split(";")[0].split(",")
    return list(zip(open(src).read().splitlines(), open(tgt).read().splitlines()))


def test_prepared_seq2seq_gives_the_in_memory_batches(reversal):
    from textgen.tasks.seq2seq import Seq2SeqTask

    _, recipe_path = reversal
    recipe = load_recipe(str(recipe_path), ["train.seed=5", "data.max_len=5"])
    task = Seq2SeqTask(recipe)
    assert_same_batches(task, read_pairs(recipe.data.corpus))
    truncated = Seq2SeqTask(load_recipe(str(recipe_path), ["train.seed=5", "data.max_source_tokens=3"]))
    assert int(truncated.src_lens.max()) == 3
    assert_same_batches(truncated, read_pairs(recipe.data.corpus), epochs=1)
    assert task.references[3] == read_pairs(recipe.data.corpus)[int(task.keep[3])][1]


def test_a_second_run_reuses_the_prepared_folder_and_trains_bit_identically(reversal, monkeypatch):
    import textgen.data.prepared_parallel as pp
    from textgen.tasks.seq2seq import Seq2SeqTask
    from textgen.train.loop import seed_everything

    _, recipe_path = reversal
    recipe = load_recipe(str(recipe_path), ["train.seed=6"])

    def losses():
        seed_everything(recipe)
        task = Seq2SeqTask(recipe)
        opt = torch.optim.Adam(task.model.parameters(), lr=0.01)
        out = []
        for step in range(4):
            opt.zero_grad()
            loss = task.loss(step)
            (loss.loss_sum / loss.ntokens).backward()
            opt.step()
            out.append(loss.loss_sum.item())
        return task, out

    first_task, first = losses()

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("the second run must not build the vocabulary or encode the corpus again")

    monkeypatch.setattr(pp.Vocabs, "build", no_tokenizing)
    monkeypatch.setattr(pp, "_write_split", no_tokenizing)
    second_task, second = losses()
    assert second_task.train.src.ids.filename == first_task.train.src.ids.filename  # the same mapped file
    assert first == second


def test_tokenizer_settings_and_data_key_the_prepared_folder(reversal, tmp_path):
    from textgen.data.prepared_parallel import prepare_parallel

    _, recipe_path = reversal
    base = prepare_parallel(load_recipe(str(recipe_path)))
    assert prepare_parallel(load_recipe(str(recipe_path), ["train.seed=9"])).folder == base.folder  # not a data key
    other = prepare_parallel(load_recipe(str(recipe_path), ["data.lowercase=true"]))
    assert other.folder != base.folder
    src, tgt = (tmp_path / "s.txt", tmp_path / "t.txt")
    src.write_text("a b\nb c\n")
    tgt.write_text("b a\nc b\n")
    own = load_recipe(str(recipe_path), [f'data.corpus="{src},{tgt};{src},{tgt}"'])
    first = prepare_parallel(own)
    assert first.sha256["train.src"] == first.sha256["valid.src"]  # real sha256 of the user's files
    src.write_text("a b\nb d\n")
    assert prepare_parallel(own).folder != first.folder  # changed data: a new folder


def test_prepared_lm_ids_are_the_encoded_splits(tiny_recipe):
    from textgen.data.prepared_text import prepare_text
    from textgen.tasks.lm import prepare_data

    recipe = load_recipe(str(tiny_recipe))
    prepared, direct = prepare_text(recipe), prepare_data(recipe)
    assert prepared.vocab == direct.vocab
    for split in ("train", "valid", "test"):
        assert torch.equal(prepared.ids(split).long(), direct.ids[split])


def test_word_level_text_encodes_the_same_in_chunks():
    from textgen.data.prepared_text import text_chunks
    from textgen.data.vocab import WordVocab

    text = "".join(f"w{i % 7} w{i % 5}\n" for i in range(500)) + "last line"
    vocab = WordVocab.build(text)
    pieces = list(text_chunks(text, size=37))
    assert len(pieces) > 10 and "".join(pieces) == text
    assert [i for p in pieces for i in vocab.encode(p)] == vocab.encode(text)


@needs_mirror
@pytest.mark.parametrize("name", ["translate-multi30k", "ptb-small", "shakespeare"])
def test_real_corpora_prepare_to_the_in_memory_encoding(name):
    """Multi30k, PTB and Tiny Shakespeare: the same vocabulary, ids and batches as encoding in memory."""
    from textgen.data.parallel import load_parallel
    from textgen.data.seqvocab import SentencePieceVocab
    from textgen.tasks import build_task
    from textgen.tasks.lm import prepare_data
    from textgen.tasks.seq2seq import Seq2SeqTask

    recipe = load_recipe(name)
    if recipe.task == "lm":
        task, direct = build_task(recipe), prepare_data(recipe)
        assert task.vocab == direct.vocab
        assert torch.equal(task.valid_ids.long(), direct.ids["valid"])
        streams = direct.ids["train"][: task.train.numel()].view(task.train.shape)
        assert torch.equal(task.train.long(), streams)
        return
    task = Seq2SeqTask(recipe)
    train = load_parallel(recipe.data.corpus).splits["train"]
    assert task.vocabs.src == SentencePieceVocab.train(train.sources + train.targets, recipe.data.vocab_size)
    pairs = list(zip(train.sources, train.targets))
    expected = in_memory_batches(task, pairs, 0)
    for index in (0, 1, len(expected) - 1):
        got, want = task._batch(index), expected[index]
        assert torch.equal(got.src, want.src) and torch.equal(got.tgt_out, want.tgt_out)
    lengths = np.array([len(task.vocabs.tgt.encode(t)) for t in train.targets])
    assert np.array_equal(task.train.tgt.lengths(), lengths)


def test_file_hashes_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import textgen.data.prepared as prepared

    path = tmp_path / "corpus.txt"
    path.write_text("one\n")
    first = prepared.file_sha256(path)
    monkeypatch.setattr(prepared, "sha256_of", lambda p: (_ for _ in ()).throw(AssertionError("read again")))
    assert prepared.file_sha256(path) == first  # unchanged: not read again
    path.write_text("two lines\nnow\n")
    monkeypatch.undo()
    assert prepared.file_sha256(path) != first


def test_target_vocab_keeps_the_pieces_the_training_targets_use_padded_to_64(tmp_path):
    """data.target_vocab = "targets": the decoder spans the target side's pieces of the joint model; every
    training target keeps its text and segmentation, and the vocabulary survives a checkpoint round trip."""
    from textgen.data.seqvocab import UNK, TargetPieces, Vocabs
    from textgen.tasks.seq2seq import Seq2SeqTask

    rng = random.Random(0)
    src_words = ["".join(rng.choices("bcdfghjklmnpqrstvwxz", k=6)) for _ in range(120)]  # a joint model of 120
    tgt_words = ["alpha", "beta", "gamma", "delta"]
    for split, n in (("train", 300), ("valid", 20)):
        rows = [rng.sample(range(120), 4) for _ in range(n)]
        (tmp_path / f"{split}.src").write_text("".join(" ".join(src_words[i] for i in r) + "\n" for r in rows))
        (tmp_path / f"{split}.tgt").write_text("".join(" ".join(tgt_words[i % 4] for i in r) + "\n" for r in rows))
    (tmp_path / "valid.tgt").write_text(f"alpha {' '.join(src_words)}\n" * 20)  # pieces only the sources use
    corpus = ";".join(f"{tmp_path}/{s}.src,{tmp_path}/{s}.tgt" for s in ("train", "valid"))
    recipe_path = tmp_path / "r.toml"
    recipe_path.write_text(
        f'task = "seq2seq"\n[data]\ncorpus = "{corpus}"\ntokenizer = "spm"\nvocab_size = 120\n'
        "[model]\nlayers = 1\nhidden = 16\n[train]\nmax_tokens = 200\n"
    )
    joint = Seq2SeqTask(load_recipe(str(recipe_path)))
    task = Seq2SeqTask(load_recipe(str(recipe_path), ["data.target_vocab=targets"]))
    assert isinstance(task.vocabs.tgt, TargetPieces) and task.vocabs.src == joint.vocabs.src
    used = {i for row in range(len(joint.train.tgt)) for i in joint.train.tgt[row].tolist()} | {0, 1, 2, 3}
    filler = sorted(set(range(len(joint.vocabs.tgt))) - used)[: 64 - len(used)]  # the lowest unused ids, to 64
    assert task.vocabs.tgt.pieces.tolist() == sorted(used | set(filler)) and 64 == len(task.vocabs.tgt)
    assert len(joint.vocabs.tgt) > 64
    assert task.model.proj.out_features == len(task.vocabs.tgt)
    lines = (tmp_path / "train.tgt").read_text().splitlines()
    for row in range(len(task.train.tgt)):
        ids = task.train.tgt[row].tolist()
        assert [int(task.vocabs.tgt.pieces[i]) for i in ids] == joint.train.tgt[row].tolist()  # same segmentation
        assert task.vocabs.tgt.decode(ids) == lines[row]
    assert UNK not in joint.valid_tgt[0] and UNK in task.valid_tgt[0]  # source words: joint pieces, not target ones
    restored = Vocabs.from_dict(task.vocabs.to_dict())
    assert restored.tgt == task.vocabs.tgt and restored.src == task.vocabs.src
    assert task.train.tgt.ids.filename != joint.train.tgt.ids.filename  # its own prepared folder


def test_build_pauses_the_cycle_collector_only_while_it_writes(tmp_path):
    import gc

    from textgen.data.prepared import Plan, build
    from textgen.errors import UserError

    seen = []

    def write(tmp):
        seen.append(gc.isenabled())
        return {}

    def fail(tmp):
        raise OSError("unreadable")

    assert gc.isenabled()
    build(Plan("c", {"x": 1}), write, tmp_path / "ok")
    with pytest.raises(UserError, match="unreadable"):
        build(Plan("c", {"x": 2}), fail, tmp_path / "bad")
    assert seen == [False] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        build(Plan("c", {"x": 3}), write, tmp_path / "off")
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux) to tell a dead builder")
def test_a_build_removes_what_killed_builds_left_and_nothing_else(tmp_path):
    import os
    import subprocess
    import sys

    from textgen.data.prepared import OWNER, Plan, build, process_identity

    me = process_identity(os.getpid())
    boot, namespace, pid, started = me.split()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owners = {
        "dead": f"{boot} {namespace} {dead.pid} 1",  # killed mid-build: its process is gone
        "restarted": f"{boot} {namespace} {pid} {int(started) - 1}",  # our pid, another process's start time
        "live": me,  # a build still running
        "other-namespace": f"{boot} 1 {dead.pid} 1",  # a container or machine sharing the storage
        "other-boot": f"x {namespace} {dead.pid} 1",
    }
    for name, owner in owners.items():
        (tmp_path / f".c.{name}.tmp").mkdir()
        (tmp_path / f".c.{name}.tmp" / OWNER).write_text(owner)
    (tmp_path / ".c.unowned.tmp").mkdir()  # made, owner not yet written
    out = build(Plan("c", {"x": 1}), lambda tmp: {}, tmp_path / "c")
    left = sorted(p.name for p in tmp_path.glob(".c.*"))
    assert left == [".c.live.tmp", ".c.other-boot.tmp", ".c.other-namespace.tmp", ".c.unowned.tmp"]
    assert not (out / OWNER).exists() and (out / "manifest.json").is_file()


# --- a prepared folder given with --prepared -------------------------------------------------------------


def small_mt_recipe(folder: Path, corpus: str = "multi30k") -> Path:
    """A word-level seq2seq recipe whose own corpus setting is `corpus` (a registry name by default)."""
    recipe = folder / "mt.toml"
    recipe.write_text(
        f'task = "seq2seq"\n[data]\ncorpus = "{corpus}"\ntokenizer = "word"\n'
        "[model]\nlayers = 1\nhidden = 8\nembed = 8\n[train]\nmax_steps = 1\n"
    )
    return recipe


def small_mt_corpus(folder: Path) -> str:
    (folder / "s.txt").write_text("a b c\nb c d\n" * 20)
    (folder / "t.txt").write_text("c b a\nd c b\n" * 20)
    return "s.txt,t.txt;s.txt,t.txt"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_train_takes_the_corpus_from_the_prepared_folder(cli, tmp_path, monkeypatch, arch):
    corpus = small_mt_corpus(tmp_path)
    recipe = small_mt_recipe(tmp_path)  # says multi30k: the folder's manifest names the corpus
    assert cli("data", "prepare", corpus, "--recipe", recipe, "-o", "prep").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the manifest's paths hold from any folder
    done = cli(
        "train", "-r", recipe, *arch_sets(arch), "--prepared", tmp_path / "prep", "-o", "m.pt", "--run-dir", "run"
    )
    assert done.code == 0, done.err
    recorded = torch.load(elsewhere / "m.pt", weights_only=True)["recipe"]["data"]["corpus"]
    assert recorded == f"{tmp_path}/s.txt,{tmp_path}/t.txt;{tmp_path}/s.txt,{tmp_path}/t.txt"
    assert torch.load(elsewhere / "m.pt", weights_only=True)["recipe"]["model"]["arch"] == arch
    # a --set data.corpus that names other data is still refused
    other = cli("train", "-r", recipe, "--prepared", tmp_path / "prep", "--set", "data.corpus=multi30k")
    assert other.code == 2 and "other data" in other.err, other.err


def test_a_prepared_folder_from_other_data_names_the_file_and_both_hashes(cli, tmp_path):
    from textgen.data.registry import sha256_of

    corpus = small_mt_corpus(tmp_path)
    recipe = small_mt_recipe(tmp_path, corpus)
    assert cli("data", "prepare", "--recipe", recipe, "-o", "prep").code == 0
    before = sha256_of(tmp_path / "t.txt")
    (tmp_path / "t.txt").write_text("c b a\nd c a\n" * 20)
    result = cli("train", "-r", recipe, "--prepared", "prep")
    assert result.code == 2, result.err
    message = result.err.strip()
    assert "train.tgt" in message and "t.txt" in message, message
    assert before in message and sha256_of(tmp_path / "t.txt") in message, message  # full hashes, not cut


@pytest.mark.parametrize("task", ["lm", "seq2seq"])
def test_prepared_ids_outside_the_vocabulary_are_refused_when_the_folder_opens(cli, tmp_path, tiny_recipe, task):
    if task == "lm":
        recipe, array = tiny_recipe, "train.npy"
    else:
        recipe, array = small_mt_recipe(tmp_path, small_mt_corpus(tmp_path)), "train.tgt.ids.npy"
    assert cli("data", "prepare", "--recipe", recipe, "-o", "prep").code == 0
    ids = np.load(tmp_path / "prep" / array, mmap_mode="r+")
    ids[len(ids) // 2] = ids.max() + 3  # same size, one id past the vocabulary
    ids.flush()
    del ids
    result = cli("train", "-r", recipe, "--prepared", "prep", "--set", "train.max_steps=2")
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert "outside the vocabulary" in result.err and "prepare" in result.err and array in result.err, result.err


def test_prepared_folders_follow_the_umask(cli, tmp_path, tiny_recipe):
    import os

    old = os.umask(0o022)
    try:
        assert cli("data", "prepare", "--recipe", tiny_recipe, "-o", "prep").code == 0
        assert cli("data", "prepare", "--recipe", tiny_recipe).code == 0  # into the cache
    finally:
        os.umask(old)
    from textgen.data.prepared import prepared_root

    cached = [p for p in prepared_root().iterdir() if p.is_dir()]
    for folder in [tmp_path / "prep", *cached]:
        assert folder.stat().st_mode & 0o777 == 0o755, folder
        for file in folder.iterdir():
            assert file.stat().st_mode & 0o777 == 0o644, file


def test_data_prepare_draws_progress_on_a_terminal_and_nothing_in_a_log(cli, tmp_path, tiny_recipe, monkeypatch):
    import io

    from rich.console import Console

    import textgen.console

    corpus, recipe = small_mt_corpus(tmp_path), small_mt_recipe(tmp_path)
    logged = cli("data", "prepare", corpus, "--recipe", recipe, "-o", "logged")
    assert logged.code == 0 and "encode" not in logged.err, logged.err  # stderr is not a terminal here
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(textgen.console, "stderr_console", lambda quiet=False: terminal)
    assert cli("data", "prepare", corpus, "--recipe", recipe, "-o", "shown").code == 0
    assert cli("data", "prepare", "--recipe", tiny_recipe, "-o", "shown-lm").code == 0
    drawn = screen.getvalue()
    assert "encode train" in drawn and "40/40" in drawn and "encode valid" in drawn, drawn
    assert "encode train (characters)" in drawn, drawn
