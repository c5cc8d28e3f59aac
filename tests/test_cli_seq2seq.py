"""Seq2seq through the real CLI: train a toy reversal task, decode, evaluate; metric parity with sacrebleu."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ARCHS, make_reversal_corpus, write_reversal_recipe  # noqa: F401 (others import them from here)

# tests that take it run on the toy reversal model of each architecture (conftest.trained_mt)
each_arch = pytest.mark.parametrize("trained_mt", list(ARCHS), indirect=True)


@each_arch
def test_seq2seq_learns_and_eval_writes_results(cli, trained_mt, tmp_path):
    result = cli(
        "eval",
        trained_mt,
        "--split",
        "test",
        "--beam",
        "3",
        "--metric",
        "bleu4",
        "--metric",
        "rouge2",
        "--json",
        "--results",
        "r.json",
        "--hyp-out",
        "hyps.txt",
    )
    assert result.code == 0, result.err
    metrics = json.loads(result.out)["metrics"]
    assert metrics["bleu4"] > 50 and metrics["rouge2"] > 50 and metrics["sentences"] == 40
    assert len((tmp_path / "hyps.txt").read_text().splitlines()) == 40
    assert "nrefs:1|case:mixed" in json.loads((tmp_path / "r.json").read_text())["signatures"]["bleu4"]


def test_eval_reads_only_the_split_it_scores(cli, trained_mt, tmp_path):
    """Scoring test never reads the training files (on a big corpus, gigabytes): here they do not exist."""
    folder = Path(trained_mt).parent
    gone = f"{tmp_path}/gone.src,{tmp_path}/gone.tgt"
    spec = f"{gone};{folder}/valid.src,{folder}/valid.tgt;{folder}/test.src,{folder}/test.tgt"
    result = cli("eval", trained_mt, "--split", "test", "--beam", "1", "--data", spec, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["metrics"]["sentences"] == 40
    missing = cli("eval", trained_mt, "--split", "test", "--data", f"{gone};{gone}")
    assert missing.code == 2 and "has no test split: choose from train, valid" in missing.err


def test_init_from_with_other_data_settings_names_the_keys_to_set(cli, trained_mt):
    recipe = Path(trained_mt).parent / "rev.toml"
    sets = ("--set", f'init_from="{trained_mt}"', "--set", "data.lowercase=true")
    result = cli("train", "-r", str(recipe), *sets, "-o", "x.pt")
    assert result.code == 2 and "other [data] settings: add --set data.lowercase=false" in result.err
    both = cli("train", "-r", str(recipe), *sets, "--set", "model.dropout=0.37", "-o", "x.pt")  # one error names all
    assert both.code == 2 and "other [model] and [data] settings: add --set model.dropout=" in both.err
    assert "--set data.lowercase=false" in both.err and len(both.err.strip().splitlines()) == 1


@each_arch
def test_decode_reads_stdin_and_prints_sorted_nbest(cli, trained_mt, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("a b c d\ne f\n"))
    out = cli("decode", trained_mt, "--beam", "4", "--nbest", "3")
    assert out.code == 0, out.err
    rows = [line.split("\t") for line in out.out.splitlines()]
    assert [r[0] for r in rows] == ["0"] * 3 + ["1"] * 3
    for i in (0, 3):
        scores = [float(r[1]) for r in rows[i : i + 3]]
        assert scores == sorted(scores, reverse=True)
    assert rows[0][2] == "d c b a"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a b c d\n"))
    greedy = cli("decode", trained_mt, "--beam", "1")
    assert greedy.out.strip() == "d c b a"


def test_eval_bleu_equals_sacrebleu_cli(cli, tmp_path):
    hyps = ["The cat sat on the mat.", "A man rides a bike down the hill!", "Two dogs play."]
    refs = ["The cat is on the mat.", "A man is riding a bicycle down a hill.", "Two dogs are playing."]
    (tmp_path / "h.txt").write_text("\n".join(hyps) + "\n")
    (tmp_path / "r.txt").write_text("\n".join(refs) + "\n")
    ours = json.loads(cli("eval", "--hyp", "h.txt", "--ref", "r.txt", "--metric", "bleu4", "--json").out)
    sacrebleu = Path(sys.executable).parent / "sacrebleu"
    theirs = subprocess.run(
        [str(sacrebleu), str(tmp_path / "r.txt"), "-i", str(tmp_path / "h.txt"), "-b", "-w", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ours["metrics"]["bleu4"] == pytest.approx(float(theirs.stdout.strip()), abs=0.005)


def test_interactive_decoding(cli, trained_mt, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("a b c d\n\ne f\n"))
    result = cli("decode", trained_mt, "--interactive", "--beam", "3")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["d c b a", "f e"]
    assert result.err.count("source> ") == 4
    for errors in ("strict", "surrogateescape"):  # a C locale decodes stdin with surrogateescape
        stdin = io.TextIOWrapper(io.BytesIO(b"a b\n\xff c\nb a\n"), encoding="utf-8", errors=errors)
        monkeypatch.setattr(sys, "stdin", stdin)
        bad = cli("decode", trained_mt, "--interactive")
        assert bad.code == 2 and bad.out == "b a\n" and "error: standard input line 2 is not UTF-8" in bad.err


@each_arch
def test_bf16_decoding_runs_in_bf16_and_matches_fp32_outputs(cli, trained_mt, tmp_path):
    import torch

    from textgen.precision import autocast, cpu_runs_bf16_lstm
    from textgen.tasks.seq2seq import load_model

    model, _, _, _ = load_model(trained_mt)
    lstm = any(isinstance(m, torch.nn.LSTM) for m in model.modules())  # a Transformer runs bf16 on any CPU
    if lstm and not cpu_runs_bf16_lstm():  # AVX2-only CPUs: decoding an LSTM in bf16 is refused in one line
        result = cli("eval", trained_mt, "--split", "test", "--precision", "bf16")
        assert result.code == 2 and "bf16 needs a CPU with AVX512-BF16 or AMX" in result.err, result.err
        return
    src, lens = torch.tensor([[4, 5, 6]]), torch.tensor([3])
    with autocast("bf16"):
        logits, _ = model.step(torch.tensor([2]), model.encode(src, lens))
    assert logits.dtype == torch.bfloat16  # the context really lowers the precision
    runs = {}
    for precision in ("fp32", "bf16"):
        result = cli(
            "eval",
            trained_mt,
            "--split",
            "test",
            "--beam",
            "3",
            "--precision",
            precision,
            "--json",
            "--hyp-out",
            f"{precision}.txt",
        )
        assert result.code == 0, result.err
        assert json.loads(result.out)["metrics"]["precision"] == precision
        runs[precision] = (tmp_path / f"{precision}.txt").read_text().splitlines()
    same = sum(a == b for a, b in zip(runs["fp32"], runs["bf16"]))
    assert same >= 0.9 * len(runs["fp32"])
    bad = cli("eval", trained_mt, "--split", "test", "--precision", "fp8")
    assert bad.code == 2 and "unknown precision 'fp8'" in bad.err


@each_arch
def test_decode_keeps_the_recipes_no_repeat_ngram_unless_given(cli, trained_mt, tmp_path, monkeypatch):
    """Options left unset keep the recipe's decode settings, so decode and eval agree on one checkpoint."""
    import io

    import torch

    payload = torch.load(trained_mt, weights_only=True)
    payload["recipe"]["decode"]["no_repeat_ngram"] = 1
    torch.save(payload, tmp_path / "norepeat.pt")
    source = "a a b b c\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(source))
    plain = cli("decode", trained_mt, "--beam", "3").out.split()
    assert len(set(plain)) < len(plain)  # the model itself repeats tokens (it reverses "a a b b c")
    monkeypatch.setattr(sys, "stdin", io.StringIO(source))
    recipe_setting = cli("decode", tmp_path / "norepeat.pt", "--beam", "3").out.split()
    assert recipe_setting and len(set(recipe_setting)) == len(recipe_setting)
    monkeypatch.setattr(sys, "stdin", io.StringIO(source))
    assert cli("decode", tmp_path / "norepeat.pt", "--beam", "3", "--no-repeat-ngram", "0").out.split() == plain


def test_training_batches_are_redrawn_every_epoch_from_seed_and_epoch(reversal):
    from textgen.config import load_recipe
    from textgen.tasks.seq2seq import Seq2SeqTask

    _, recipe = reversal

    def batches(task, epoch):
        return [b.tolist() for b in task.epoch_batches(epoch)]

    task = Seq2SeqTask(load_recipe(str(recipe), ["train.seed=3"]))
    first, second = batches(task, 0), batches(task, 1)
    assert len(first) == len(second) == task.steps_per_epoch
    for drawn in (first, second):
        assert sorted(i for b in drawn for i in b) == list(range(task.keep.size))  # each example once
    assert sorted(map(sorted, first)) != sorted(map(sorted, second))  # different compositions, not just order
    assert batches(task, 1) == second  # a pure function of (seed, epoch): resume needs no state
    other_seed = Seq2SeqTask(load_recipe(str(recipe), ["train.seed=4"]))
    assert sorted(map(sorted, batches(other_seed, 0))) != sorted(map(sorted, first))
    shapes = [sorted(len(b) for b in drawn) for drawn in (first, second, batches(other_seed, 0))]
    assert shapes[0] == shapes[1] == shapes[2]  # same boundaries: steps per epoch never change


def test_load_model_with_a_mismatched_vocabulary_is_a_user_error(trained_mt, tmp_path):
    import torch

    from textgen.errors import UserError
    from textgen.tasks.seq2seq import load_model

    payload = torch.load(trained_mt, weights_only=True)
    vocab = payload["vocab"]["src"] if "src" in payload["vocab"] else payload["vocab"]["joint"]
    vocab["symbols"] = vocab["symbols"][:-1]
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(UserError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")


@each_arch
def test_eval_writes_hypotheses_only_where_asked_and_names_every_setting(cli, trained_mt, tmp_path):
    plain = cli("eval", trained_mt, "--split", "test", "--beam", "1")
    assert plain.code == 0, plain.err
    assert list(tmp_path.iterdir()) == [], "eval without --hyp-out writes nothing where it runs"
    settings = [
        ("--mbr", "3", "--mbr-utility", "chrf"),
        ("--mbr", "3", "--mbr-utility", "bleu"),
        ("--mbr", "3", "--mbr-utility", "bleu", "--seed", "5"),
        ("--mbr", "3", "--mbr-sampling", "top_p", "--mbr-top-p", "0.8"),
        ("--mbr", "3", "--mbr-beam", "2"),
        ("--beam", "2"),
        ("--beam", "3"),
    ]
    written = []
    for extra in settings:
        result = cli("eval", trained_mt, "--split", "test", "--hyp-out", "hyps/", *extra)
        assert result.code == 0, result.err
        written.append(result.err.split("hypotheses: ")[1].split()[0])
    assert len(set(written)) == len(settings), written  # no eval overwrote another's
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "hyps").iterdir()) == sorted(written)
    for name, part in zip(written, ["chrf", "bleu", "seed5", "top_p0.8", "beam2", "beam2", "beam3"]):
        assert part in Path(name).name and len((tmp_path / name).read_text().splitlines()) == 40
    assert "seed0" in written[0] and "lenpen" in written[-1]
    explicit = cli("eval", trained_mt, "--split", "test", "--beam", "1", "--hyp-out", "out/greedy.txt")
    assert explicit.code == 0 and len((tmp_path / "out" / "greedy.txt").read_text().splitlines()) == 40


def test_decode_and_eval_show_a_progress_bar_only_on_a_terminal(cli, trained_mt, tmp_path, monkeypatch):
    (tmp_path / "src.txt").write_text("a b c d\ne f\nh g h\n" * 7)
    decode = ("decode", trained_mt, "-i", "src.txt", "--beam", "2", "--batch-size", "4")
    evaluate = ("eval", trained_mt, "--split", "test", "--mbr", "2", "--mbr-beam", "2", "--batch-size", "8")
    piped, piped_eval = cli(*decode), cli(*evaluate)
    assert piped.code == 0 and piped.err == "" and len(piped.out.splitlines()) == 21
    assert piped_eval.code == 0 and "━" not in piped_eval.err
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    shown, shown_eval = cli(*decode), cli(*evaluate)
    assert shown.out == piped.out, "the bar goes to stderr alone"
    assert "decode" in shown.err and "21/21" in shown.err
    untimed = [result.out.split("decode_seconds")[0] for result in (piped_eval, shown_eval)]
    assert untimed[0] == untimed[1] and "decode test" in shown_eval.err and "120/120" in shown_eval.err


def test_a_training_pair_over_max_len_is_dropped_with_a_count(cli, tmp_path):
    """One very long pair (a pasted document) is left out of training by the default data.max_len, and said so,
    rather than crashing the allocator when its batch comes up."""
    corpus = make_reversal_corpus(tmp_path)
    with open(tmp_path / "train.src", "a") as src, open(tmp_path / "train.tgt", "a") as tgt:
        src.write(" ".join(["a"] * 3000) + "\n")
        tgt.write("b c\n")
    train = {"max_tokens": 200, "max_steps": 2, "eval_every": 2}
    recipe = write_reversal_recipe(tmp_path / "r.toml", corpus, "one long pair", hidden=16, train=train)
    result = cli("train", "-r", recipe, "-o", "m.pt", "--run-dir", "run")
    assert result.code == 0, result.err
    dropped = [line for line in result.err.splitlines() if "dropped" in line]
    assert dropped == ["dropped 1 of 601 training pairs with a side over data.max_len = 256 tokens "
                       "(--set data.max_len=N to keep longer ones)"]  # fmt: skip
    assert "601 pairs" not in result.err and "600 pairs" in result.err


def test_a_fine_tune_says_where_it_started_and_continues_its_parents_steps(cli, trained_mt, tmp_path):
    """A fine-tune prints its init_from checkpoint and step, and its metrics.csv global_step goes on from
    there; data.max_len (which pairs train, not the model) may differ from the parent's."""
    import csv

    import torch

    recipe = Path(trained_mt).parent / "rev.toml"
    parent_step = torch.load(trained_mt, weights_only=True)["train_state"]["step"]
    sets = ("--set", f'init_from="{trained_mt}"', "--set", "train.max_steps=4", "--set", "train.eval_every=2")
    result = cli("train", "-r", recipe, *sets, "--set", "data.max_len=100", "-o", "ft.pt", "--run-dir", "ft")
    assert result.code == 0, result.err
    assert f"initialised from {trained_mt} (step {parent_step})" in result.err.splitlines()
    rows = list(csv.DictReader(open(tmp_path / "ft" / "metrics.csv")))
    assert rows and all(int(r["global_step"]) == parent_step + int(r["step"]) for r in rows)


def test_sentencepiece_says_when_it_builds_fewer_pieces_than_asked(cli, tmp_path):
    import random

    from textgen.config import load_recipe
    from textgen.tasks.seq2seq import Seq2SeqTask

    rng = random.Random(0)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=5)) for _ in range(60)]
    for split, n in (("train", 300), ("valid", 20)):
        rows = [" ".join(rng.sample(words, 4)) for _ in range(n)]
        (tmp_path / f"{split}.src").write_text("".join(row + "\n" for row in rows))
        (tmp_path / f"{split}.tgt").write_text("".join(row.upper() + "\n" for row in rows))
    corpus = ";".join(f"{tmp_path}/{s}.src,{tmp_path}/{s}.tgt" for s in ("train", "valid"))
    recipe = write_reversal_recipe(tmp_path / "r.toml", corpus, "spm", hidden=16, train={"max_tokens": 200})
    task = Seq2SeqTask(load_recipe(str(recipe), ["data.tokenizer=spm", "data.vocab_size=2000"]))
    pieces = len(task.vocabs.src)
    assert pieces < 2000
    assert f"sentencepiece: {pieces:,} pieces, fewer than the 2,000 asked for (data.vocab_size): " in "\n".join(
        task.notes
    )
    full = Seq2SeqTask(load_recipe(str(recipe), ["data.tokenizer=spm", f"data.vocab_size={pieces}"]))
    assert not [note for note in full.notes if "sentencepiece" in note]
    prepared = cli("data", "prepare", "-r", recipe, "--set", "data.tokenizer=spm", "--set", "data.vocab_size=2000")
    assert prepared.code == 0 and f"sentencepiece: {pieces:,} pieces, fewer than the 2,000" in prepared.err


# Each sequence-level objective from its first update (no XENT stage), and its metrics.csv column that shows it ran
SEQUENCE_LEVEL = {
    "mixer-loo": (
        ["objective.name=mixer", "objective.mixer.baseline=loo", "objective.mixer.samples=2"],
        ("reward", lambda rewards: all(0 <= r <= 1 for r in rewards)),
    ),
    "mrt": (
        ["objective.name=mrt", "objective.mrt.candidates=3"],
        ("risk", lambda risks: all(0 <= r <= 1 for r in risks)),
    ),
    "dad": (["objective.name=dad", "objective.dad.max_p=1.0", "objective.dad.ramp_epochs=0.1"], ("dad_p", max)),
    "e2e": (["objective.name=e2e", "objective.e2e.k=3"], ("s", lambda s: max(s) < 4)),
}


@each_arch
@pytest.mark.parametrize("objective", list(SEQUENCE_LEVEL))
def test_sequence_level_objectives_fine_tune_each_arch(cli, trained_mt, tmp_path, objective):
    """A fine-tune of the toy model by each sequence-level objective past its XENT stage (MIXER's schedule at
    s = T - delta = 2 for MIXER and E2E; DAD feeding predictions at once): it runs, logs its own quantity, moves
    the weights and keeps the model decoding."""
    import csv

    import torch

    sets, (column, ran) = SEQUENCE_LEVEL[objective]
    schedule = ["objective.mixer.T=4", "objective.mixer.delta=2", "objective.mixer.xent_epochs=0"]
    budget = ["train.max_steps=3", "train.eval_every=3", "train.log_every=1", "train.valid_subset=8"]
    options = [a for s in [f'init_from="{trained_mt}"', *sets, *schedule, *budget] for a in ("--set", s)]
    recipe = Path(trained_mt).parent / "rev.toml"
    result = cli("train", "-r", recipe, *options, "-o", "ft.pt", "--run-dir", "ft")
    assert result.code == 0, result.err
    logged = [float(r[column]) for r in csv.DictReader(open(tmp_path / "ft" / "metrics.csv")) if r.get(column)]
    assert len(logged) == 3 and ran(logged), (column, logged)
    before, after = (torch.load(p, weights_only=True)["model"] for p in (trained_mt, tmp_path / "ft.pt"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert cli("decode", "ft.pt", "-i", recipe.parent / "test.src", "--beam", "2").out.count("\n") == 40


@pytest.mark.parametrize("arch", list(ARCHS))
def test_shared_embeddings_over_a_joint_vocabulary_are_one_table_after_loading(cli, tmp_path, arch):
    """model.share_embeddings on a joint sentencepiece vocabulary: one table for both sides, in the trained
    model and in the one loaded from its checkpoint (parameters() counts a shared tensor once)."""
    from tests.conftest import arch_sets
    from textgen.tasks.seq2seq import load_model

    corpus = make_reversal_corpus(tmp_path)
    train = {"max_tokens": 200, "max_steps": 2, "eval_every": 2}
    recipe = write_reversal_recipe(tmp_path / "r.toml", corpus, "shared", hidden=32, train=train)
    sets = ["data.tokenizer=spm", "data.vocab_size=32", "model.share_embeddings=true", "model.embed=32"]
    done = cli("train", "-r", recipe, *arch_sets(arch), *(a for s in sets for a in ("--set", s)), "-o", "m.pt")
    assert done.code == 0, done.err
    model, vocabs, _, payload = load_model(tmp_path / "m.pt")
    assert vocabs.src is vocabs.tgt and len(payload["model"]) == len(list(model.parameters())) + 1
    assert cli("decode", "m.pt", "-i", tmp_path / "test.src").out.count("\n") == 40
