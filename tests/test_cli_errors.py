"""Bad input gets one line on stderr naming the problem and the fix, exit code 2, no traceback.

Each case runs the real CLI and checks its message against its row of docs/ERRORS.md; a separate
test checks the table as a whole (one row per case, in order). Neither depends on the other having
run, so any subset (`-k`) and any order works. Regenerate rows with
`UPDATE_ERRORS_DOC=1 pytest tests/test_cli_errors.py` (a subset rewrites only its own rows).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, write_recipe

DOC = REPO / "docs" / "ERRORS.md"
UPDATE = bool(os.environ.get("UPDATE_ERRORS_DOC"))


def assert_clean_error(result, *fragments):
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    # one error line, last on stderr (training progress may precede it when a fault hits mid-run)
    assert len(errors) == 1 and lines[-1] == errors[0], result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def lm_checkpoint(cli, tiny_recipe, steps=2, name="m.pt"):
    assert (
        cli(
            "train",
            "-r",
            tiny_recipe,
            "-o",
            name,
            "--run-dir",
            "run",
            "--set",
            f"train.max_steps={steps}",
            "--set",
            "train.eval_every=1",
        ).code
        == 0
    )
    return Path(name)


def seq2seq_checkpoint(cli, tmp: Path):
    (tmp / "s.txt").write_text("a b c\nb c d\n" * 20)
    (tmp / "t.txt").write_text("c b a\nd c b\n" * 20)
    recipe = tmp / "mt.toml"
    recipe.write_text(
        'task = "seq2seq"\n[data]\ncorpus = "s.txt,t.txt;s.txt,t.txt"\ntokenizer = "word"\n'
        "[model]\nlayers = 1\nhidden = 8\nembed = 8\n[train]\nmax_steps = 1\n"
    )
    assert cli("train", "-r", recipe, "-o", "mt.pt", "--run-dir", "mtrun").code == 0
    return Path("mt.pt")


def case_missing_corpus(cli, tmp, recipe):
    return cli("train", "-r", write_recipe(tmp / "r.toml", tmp / "nope.txt")), "does not exist"


def case_empty_corpus(cli, tmp, recipe):
    (tmp / "empty.txt").write_text("  \n")
    return cli("train", "-r", write_recipe(tmp / "r.toml", tmp / "empty.txt")), "is empty"


def case_binary_corpus(cli, tmp, recipe):
    (tmp / "bin.txt").write_bytes(bytes(range(256)) * 10)
    return cli("train", "-r", write_recipe(tmp / "r.toml", tmp / "bin.txt")), "binary"


def case_non_utf8_corpus(cli, tmp, recipe):
    (tmp / "latin1.txt").write_bytes("Größe und Maß\n".encode("latin-1") * 50)
    return cli("train", "-r", write_recipe(tmp / "r.toml", tmp / "latin1.txt")), "not UTF-8"


def case_corpus_shorter_than_a_window(cli, tmp, recipe):
    (tmp / "short.txt").write_text("abcdefghij" * 3)
    return cli("train", "-r", write_recipe(tmp / "r.toml", tmp / "short.txt", bptt=64)), "BPTT window"


def case_corpus_too_small_for_the_batch(cli, tmp, recipe):
    (tmp / "tiny.txt").write_text("abcdefghij" * 3)
    return cli("train", "-r", write_recipe(tmp / "r.toml", tmp / "tiny.txt", batch_size=64)), "too few for 64 streams"


def case_unknown_recipe(cli, tmp, recipe):
    return cli("train", "--recipe", "nope"), "available recipes are"


def case_recipe_toml_syntax_error(cli, tmp, recipe):
    (tmp / "bad.toml").write_text("[train]\nlr = 1\nbatch_size = = 3\n")
    return cli("train", "-r", tmp / "bad.toml"), "line 3"


def case_unknown_recipe_key(cli, tmp, recipe):
    return cli("train", "-r", recipe, "--set", "train.lrate=1"), "valid keys are"


def case_objective_key_of_an_earlier_version(cli, tmp, recipe):
    return cli("train", "-r", "mixer", "--set", "objective.mixer_T=12"), "moved: use objective.mixer.T"


def case_wrong_value_type(cli, tmp, recipe):
    return cli("train", "-r", recipe, "--set", "train.batch_size=big"), "must be int"


def case_set_without_equals(cli, tmp, recipe):
    return cli("train", "-r", recipe, "--set", "train.lr"), "no '='"


def case_checkpoint_missing(cli, tmp, recipe):
    return cli("sample", "absent.pt"), "does not exist"


def case_truncated_checkpoint(cli, tmp, recipe):
    ckpt = lm_checkpoint(cli, recipe)
    (tmp / "torn.pt").write_bytes(ckpt.read_bytes()[:1000])
    return cli("sample", "torn.pt"), "is truncated, corrupt or not a weights-only file"


def case_lm_checkpoint_given_to_decode(cli, tmp, recipe):
    lm_checkpoint(cli, recipe)
    return cli("decode", "m.pt"), "holds a lm model, this command needs a seq2seq model"


def case_seq2seq_checkpoint_given_to_sample(cli, tmp, recipe):
    seq2seq_checkpoint(cli, tmp)
    return cli("sample", "mt.pt"), "holds a seq2seq model, this command needs a lm model"


def case_incompatible_format_version(cli, tmp, recipe):
    payload = torch.load(lm_checkpoint(cli, recipe), weights_only=True)
    payload["format"] = 99
    torch.save(payload, tmp / "future.pt")
    return cli("sample", "future.pt"), "format version 99"


def case_corpus_edited_before_resume(cli, tmp, recipe):
    lm_checkpoint(cli, recipe)
    corpus = Path(re.search(r'corpus = "(.*)"', recipe.read_text()).group(1))
    corpus.write_text(corpus.read_text() + "XYZ!\n")  # same file name, new characters
    return cli("train", "-r", recipe, "--resume", "run/last.pt"), "changed since this run was trained"


def case_resume_with_a_different_recipe(cli, tmp, recipe):
    lm_checkpoint(cli, recipe)
    return cli("train", "-r", recipe, "--resume", "run/last.pt", "--set", "model.hidden=64"), "model.hidden"


def case_parallel_files_with_different_line_counts(cli, tmp, recipe):
    (tmp / "a.src").write_text("x\ny\n")
    (tmp / "a.tgt").write_text("x\n")
    (tmp / "p.toml").write_text('task = "seq2seq"\n[data]\ncorpus = "a.src,a.tgt;a.src,a.tgt"\ntokenizer = "word"\n')
    return cli("train", "-r", "p.toml"), "line-aligned"


def case_parallel_file_with_an_empty_line(cli, tmp, recipe):
    (tmp / "a.src").write_text("x\ny\n")
    (tmp / "a.tgt").write_text("x\n\n")
    (tmp / "p.toml").write_text('task = "seq2seq"\n[data]\ncorpus = "a.src,a.tgt;a.src,a.tgt"\ntokenizer = "word"\n')
    return cli("train", "-r", "p.toml"), "line 2 is empty"


def case_prepared_folder_made_with_other_settings(cli, tmp, recipe):
    assert cli("data", "prepare", "--recipe", recipe, "-o", "prep").code == 0
    return cli("train", "-r", recipe, "--prepared", "prep", "--set", "data.holdout=0.3"), "other tokenizer settings"


def case_truncated_prepared_array(cli, tmp, recipe):
    assert cli("data", "prepare", "--recipe", recipe, "-o", "prep").code == 0
    array = tmp / "prep" / "train.npy"
    array.write_bytes(array.read_bytes()[:-40])
    return cli("train", "-r", recipe, "--prepared", "prep"), "damaged"


def case_corpus_file_gone_after_preparing(cli, tmp, recipe):
    (tmp / "gone.txt").write_text("the cat sat on the mat.\n" * 80)
    mine = write_recipe(tmp / "gone.toml", tmp / "gone.txt")
    assert cli("data", "prepare", "--recipe", mine).code == 0
    (tmp / "gone.txt").unlink()
    return cli("train", "-r", mine), "does not exist"


def case_disk_full_while_preparing(cli, tmp, recipe, monkeypatch):
    import textgen.data.arrays as arrays

    def full(self, values):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(arrays.ArrayWriter, "append", full)
    result = cli("data", "prepare", "--recipe", recipe, "-o", "prep")
    assert not (tmp / "prep").exists() and not list(tmp.glob(".prep*")), "nothing half-written may remain"
    return result, "disk is full"


def case_prepare_into_an_existing_folder(cli, tmp, recipe):
    (tmp / "prep").mkdir()
    return cli("data", "prepare", "--recipe", recipe, "-o", "prep"), "already exists"


def case_prime_outside_the_vocabulary(cli, tmp, recipe):
    return cli("sample", lm_checkpoint(cli, recipe), "--prime", "XYZ"), "not in the model's vocabulary"


def case_negative_temperature(cli, tmp, recipe):
    return cli("sample", lm_checkpoint(cli, recipe), "--temperature", "-1"), "--temperature"


def case_top_p_outside_0_1(cli, tmp, recipe):
    return cli("sample", lm_checkpoint(cli, recipe), "--top-p", "1.5"), "--top-p"


def case_beam_below_1(cli, tmp, recipe):
    return cli("decode", seq2seq_checkpoint(cli, tmp), "--beam", "0"), "--beam"


def case_cuda_asked_for_on_a_machine_without_one(cli, tmp, recipe, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    return cli("train", "-r", recipe, "--device", "cuda"), "torch sees no CUDA device"


def case_unknown_device(cli, tmp, recipe):
    return cli("sample", lm_checkpoint(cli, recipe), "--device", "gpu"), "unknown device 'gpu'"


def case_fp16_on_the_cpu(cli, tmp, recipe):
    return cli("decode", seq2seq_checkpoint(cli, tmp), "--device", "cpu", "--precision", "fp16"), "use bf16 here"


def case_unknown_metric(cli, tmp, recipe):
    (tmp / "h.txt").write_text("a\n")
    return cli("eval", "--hyp", "h.txt", "--ref", "h.txt", "--metric", "meteor"), "unknown metric"


def case_hypothesis_reference_count_mismatch(cli, tmp, recipe):
    (tmp / "h.txt").write_text("a\nb\n")
    (tmp / "r.txt").write_text("a\n")
    return cli("eval", "--hyp", "h.txt", "--ref", "r.txt"), "2 hypotheses but 1 references"


def case_output_directory_not_writable(cli, tmp, recipe):
    (tmp / "plainfile").write_text("a file, not a folder: unwritable as a folder even for root")
    result = cli("train", "-r", recipe, "-o", "plainfile/m.pt", "--run-dir", "run")
    assert not (tmp / "run" / "metrics.csv").exists(), "the error must come before any training"
    return result, "writable"


def case_disk_full_while_saving(cli, tmp, recipe, monkeypatch):
    import textgen.train.checkpoint as ck

    real_save, calls = torch.save, []

    def failing_save(obj, f, *a, **k):
        calls.append(1)
        if len(calls) > 2:  # the first evaluation's two files succeed, later ones hit a full disk
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ck.torch, "save", failing_save)
    result = cli("train", "-r", recipe, "-o", "m.pt", "--run-dir", "run", "--set", "train.eval_every=5")
    monkeypatch.setattr(ck.torch, "save", real_save)
    survivor = torch.load(tmp / "run" / "last.pt", weights_only=True)
    assert survivor["train_state"]["step"] == 5, "the previous checkpoint must survive intact"
    assert not [p for p in (tmp / "run").iterdir() if p.name.endswith(".tmp")], "no temp file left behind"
    return result, "No space left on device"


def case_nan_loss(cli, tmp, recipe, monkeypatch):
    import textgen.tasks.lm as lm

    real_loss, calls = lm.loss_sum, []

    def diverging_loss(*args):
        loss, state = real_loss(*args)
        calls.append(args[0].training)
        return (loss * float("nan") if sum(calls) == 8 else loss), state  # the 8th training window diverges

    monkeypatch.setattr(lm, "loss_sum", diverging_loss)
    result = cli("train", "-r", recipe, "-o", "m.pt", "--run-dir", "run", "--set", "train.eval_every=5")
    kept = torch.load(tmp / "run" / "last.pt", weights_only=True)
    assert kept["train_state"]["step"] == 5
    assert all(torch.isfinite(v).all() for v in kept["model"].values()), "the kept checkpoint must be finite"
    return result, "loss became nan"


def case_train_output_is_an_existing_checkpoint(cli, tmp, recipe):
    kept = lm_checkpoint(cli, recipe).read_bytes()
    result = cli("train", "-r", recipe, "-o", "m.pt", "--run-dir", "run2")
    assert (tmp / "m.pt").read_bytes() == kept, "a trained checkpoint must never be replaced silently"
    assert not (tmp / "run2").exists(), "the error must come before any training"
    return result, "pass --overwrite"


def case_train_run_dir_holding_another_run(cli, tmp, recipe):
    kept = (lm_checkpoint(cli, recipe).parent / "run" / "last.pt").read_bytes()
    result = cli("train", "-r", recipe, "-o", "other.pt", "--run-dir", "run")
    assert (tmp / "run" / "last.pt").read_bytes() == kept and not (tmp / "other.pt").exists()
    return result, "--resume"


def case_train_output_is_a_fifo(cli, tmp, recipe):
    os.mkfifo(tmp / "pipe")  # like /dev/null or /dev/full: not a file, never to be replaced by one
    result = cli("train", "-r", recipe, "-o", "pipe", "--run-dir", "run")
    assert (tmp / "pipe").is_fifo() and not (tmp / "run").exists()
    return result, "not a regular file"


def case_train_output_ending_in_a_slash(cli, tmp, recipe):
    result = cli("train", "-r", recipe, "-o", "newdir/", "--run-dir", "run")
    assert not (tmp / "newdir").exists() and not (tmp / "run").exists()
    return result, "names a folder"


def case_train_output_is_an_existing_folder(cli, tmp, recipe):
    (tmp / "models").mkdir()
    result = cli("train", "-r", recipe, "-o", "models", "--run-dir", "run")
    assert not (tmp / "run").exists(), "the error must come before any training"
    return result, "names a folder"


def case_plot_output_is_a_folder(cli, tmp, recipe):
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.csv").write_text("step,epoch,train_loss\n5,0.5,2.0\n10,1.0,1.5\n")
    return cli("plot", "run", "-o", "run"), "names a folder"


def case_eval_results_ending_in_a_slash(cli, tmp, recipe):
    (tmp / "h.txt").write_text("a b\n")
    result = cli("eval", "--hyp", "h.txt", "--ref", "h.txt", "--results", "out/")
    assert not (tmp / "out").exists()
    return result, "names a folder"


def case_disk_full_inside_the_checkpoint_writer(cli, tmp, recipe, monkeypatch):
    """A real full disk fails a write inside torch's zip writer, which re-raises it as a RuntimeError."""
    import textgen.train.checkpoint as ck

    real_save, calls = torch.save, []

    class FullDisk:
        def __init__(self, file):
            self.file, self.room = file, 2000

        def write(self, data):
            self.room -= len(data)
            if self.room < 0:
                raise OSError(28, "No space left on device")
            return self.file.write(data)

        def flush(self):
            self.file.flush()

    def save_on_a_filling_disk(obj, f, *a, **k):
        calls.append(1)  # the first evaluation's two files succeed, later ones hit a full disk
        return real_save(obj, f if len(calls) <= 2 else FullDisk(f), *a, **k)

    monkeypatch.setattr(ck.torch, "save", save_on_a_filling_disk)
    result = cli("train", "-r", recipe, "-o", "m.pt", "--run-dir", "run", "--set", "train.eval_every=5")
    monkeypatch.setattr(ck.torch, "save", real_save)
    assert torch.load(tmp / "run" / "last.pt", weights_only=True)["train_state"]["step"] == 5
    assert not [p for p in (tmp / "run").iterdir() if p.name.endswith(".tmp")], "no temp file left behind"
    return result, "No space left on device"


def case_setting_out_of_range(cli, tmp, recipe):
    result = cli("train", "-r", recipe, "--set", "train.lr=nan", "--run-dir", "run")
    assert not (tmp / "run").exists()
    return result, "train.lr = nan is out of range: a finite number > 0"


def case_vocabulary_smaller_than_the_corpus_alphabet(cli, tmp, recipe):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    (tmp / "s.txt").write_text("".join(f"{alphabet[i:]} {alphabet[:i]}\n" for i in range(40)))
    (tmp / "mt.toml").write_text(
        'task = "seq2seq"\n[data]\ncorpus = "s.txt,s.txt;s.txt,s.txt"\nvocab_size = 32\n'
        "[model]\nlayers = 1\nhidden = 8\nembed = 8\n[train]\nmax_steps = 1\n"
    )
    return cli("train", "-r", "mt.toml", "-o", "mt.pt", "--run-dir", "run"), "pieces this corpus needs"


def case_decode_input_not_utf8_on_stdin(cli, tmp, recipe, monkeypatch):
    import io
    import sys

    model = seq2seq_checkpoint(cli, tmp)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a b\nb \xe9 c\n"), encoding="utf-8"))
    return cli("decode", model), "standard input line 2 is not UTF-8"


def case_decode_nan_length_penalty(cli, tmp, recipe):
    model = seq2seq_checkpoint(cli, tmp)
    return cli("decode", model, "-i", "s.txt", "--beam", "2", "--nbest", "2", "--lenpen", "nan"), "--lenpen must be"


def case_decode_negative_max_len_b(cli, tmp, recipe):
    return cli("decode", seq2seq_checkpoint(cli, tmp), "-i", "s.txt", "--max-len-b", "-5"), "--max-len-b must be"


def case_decode_beam_beyond_its_cap(cli, tmp, recipe):
    return cli("decode", seq2seq_checkpoint(cli, tmp), "-i", "s.txt", "--beam", "100000"), "--beam must be"


def case_sample_nan_temperature(cli, tmp, recipe):
    return cli("sample", lm_checkpoint(cli, recipe), "--temperature", "nan"), "--temperature must be a finite number"


def case_sample_seed_beyond_64_bits(cli, tmp, recipe):
    return cli("sample", lm_checkpoint(cli, recipe), "--seed", str(2**70)), "--seed must be an integer"


def case_truncated_gzip_in_a_parallel_corpus(cli, tmp, recipe):
    import gzip

    whole = gzip.compress("".join(f"satz {i}\n" for i in range(3000)).encode())
    (tmp / "a.src.gz").write_bytes(whole[: len(whole) // 2])
    (tmp / "a.tgt").write_text("".join(f"sentence {i}\n" for i in range(3000)))
    (tmp / "p.toml").write_text(
        'task = "seq2seq"\n[data]\ncorpus = "a.src.gz,a.tgt;a.src.gz,a.tgt"\ntokenizer = "word"\n'
    )
    return cli("train", "-r", "p.toml"), "truncated gzip file"


def case_non_utf8_byte_deep_in_a_parallel_file(cli, tmp, recipe):
    lines = [f"satz {i}".encode() for i in range(1, 801)]
    lines[500] = "Größe".encode("latin-1")
    (tmp / "a.src").write_bytes(b"\n".join(lines) + b"\n")
    (tmp / "a.tgt").write_text("".join(f"sentence {i}\n" for i in range(800)))
    (tmp / "p.toml").write_text('task = "seq2seq"\n[data]\ncorpus = "a.src,a.tgt;a.src,a.tgt"\ntokenizer = "word"\n')
    return cli("train", "-r", "p.toml"), "line 501 is not UTF-8"


def case_prepared_folder_made_from_other_data(cli, tmp, recipe):
    assert cli("data", "prepare", "--recipe", recipe, "-o", "prep").code == 0
    corpus = tmp / "tiny.txt"
    corpus.write_text(corpus.read_text()[::-1])
    return cli("train", "-r", recipe, "--prepared", "prep"), "tiny.txt"


def case_prepared_ids_outside_the_vocabulary(cli, tmp, recipe):
    import numpy as np

    assert cli("data", "prepare", "--recipe", recipe, "-o", "prep").code == 0
    ids = np.load(tmp / "prep" / "train.npy", mmap_mode="r+")
    ids[7] = 60000
    ids.flush()
    del ids
    return cli("train", "-r", recipe, "--prepared", "prep"), "outside the vocabulary"


def case_eval_when_a_training_corpus_file_is_gone(cli, tmp, recipe):
    ckpt = seq2seq_checkpoint(cli, tmp)
    (tmp / "t.txt").unlink()
    return cli("eval", ckpt, "--split", "valid"), "--data"


def case_model_too_large_to_build(cli, tmp, recipe, monkeypatch):
    import textgen.models.lm as lm

    def huge(self, *args, **kwargs):  # what the CPU allocator raises for model.hidden=65536 model.layers=64
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes.")

    monkeypatch.setattr(lm.RNNLM, "__init__", huge)
    return cli("train", "-r", recipe, "-o", "m.pt", "--run-dir", "run"), "use a smaller model"


def case_disk_full_while_writing_the_results_file(cli, tmp, recipe, monkeypatch):
    import textgen.results as results

    def full(path, result):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(results, "write_result", full)
    result = cli("train", "-r", recipe, "-o", "m.pt", "--run-dir", "run", "--results", "r.json")
    assert (tmp / "m.pt").is_file(), "the trained model is kept"
    return result, "the disk is full"


def case_shared_embeddings_over_two_vocabularies(cli, tmp, recipe):
    """Word vocabularies of the same size but other words: the model's size check alone would share them."""
    (tmp / "s.txt").write_text("a b c\nb c a\n" * 20)
    (tmp / "t.txt").write_text("x y z\nz y x\n" * 20)
    (tmp / "mt.toml").write_text(
        'task = "seq2seq"\n[data]\ncorpus = "s.txt,t.txt;s.txt,t.txt"\ntokenizer = "word"\n'
        "[model]\nlayers = 1\nhidden = 8\nembed = 8\nshare_embeddings = true\n[train]\nmax_steps = 1\n"
    )
    return cli("train", "-r", tmp / "mt.toml", "-o", "mt.pt"), "model.share_embeddings = false"


def case_transformer_context_other_than_its_training_window(cli, tmp, recipe):
    sets = ("model.arch=transformer", "model.embed=0", "model.heads=4", "model.context=8", "train.bptt=16")
    return cli("train", "-r", recipe, *(a for s in sets for a in ("--set", s))), "must equal train.bptt"


def case_ensemble_members_with_other_vocabularies(cli, tmp, recipe):
    seq2seq_checkpoint(cli, tmp)
    (tmp / "s.txt").write_text("a b c e\nb c d\n" * 20)  # another source word: another source vocabulary
    assert cli("train", "-r", tmp / "mt.toml", "-o", "other.pt", "--run-dir", "otherrun").code == 0
    return cli("score", "mt.pt", "other.pt", "--src", "s.txt", "--tgt", "t.txt"), "members of an ensemble must share"


def case_averaging_a_run_that_kept_no_checkpoints(cli, tmp, recipe):
    lm_checkpoint(cli, recipe)
    return cli("average", "run", "-o", "avg.pt"), "train.keep_checkpoints"


def case_a_reranking_file_that_is_not_one(cli, tmp, recipe):
    seq2seq_checkpoint(cli, tmp)
    (tmp / "weights.json").write_text('{"weights": {"forward": 1}}')
    return cli("decode", "mt.pt", "-i", "s.txt", "--rerank", "weights.json"), "is not a reranking file"


def case_a_ranking_objective_with_one_candidate(cli, tmp, recipe):
    seq2seq_checkpoint(cli, tmp)
    sets = ("objective.name=rank", "objective.rank.beam=1", "init_from=mt.pt")
    result = cli("train", "-r", "mt.toml", "-o", "r.pt", *(a for s in sets for a in ("--set", s)))
    return result, "at least 2 candidates"


def case_a_distillation_teacher_that_does_not_exist(cli, tmp, recipe):
    seq2seq_checkpoint(cli, tmp)
    result = cli("train", "-r", "mt.toml", "-o", "student.pt", "--set", "data.distill_from=mt.pt,gone.pt")
    return result, "teacher checkpoint 'gone.pt' does not exist"


def case_distillation_for_a_language_model(cli, tmp, recipe):
    lm_checkpoint(cli, recipe)
    return cli("train", "-r", recipe, "-o", "x.pt", "--set", "data.distill_from=m.pt"), "for seq2seq recipes"


def case_target_word_dropout_with_a_sequence_level_objective(cli, tmp, recipe):
    seq2seq_checkpoint(cli, tmp)
    sets = ("objective.name=mrt", "train.word_dropout=0.2", "init_from=mt.pt")
    result = cli("train", "-r", "mt.toml", "-o", "r.pt", *(a for s in sets for a in ("--set", s)))
    return result, "train.word_dropout is for the xent objective"


def case_target_word_dropout_for_a_language_model(cli, tmp, recipe):
    return cli("train", "-r", recipe, "-o", "x.pt", "--set", "train.word_dropout=0.1"), "for seq2seq recipes"


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("case_")}


def render(messages: dict[str, str]) -> str:
    """The whole doc: one row per case, in CASES order (a case without a message gets an empty one)."""
    rows = [f"| {name.replace('_', ' ')} | `{messages.get(name, '')}` |" for name in CASES]
    return (
        "# Bad input and what textgen says\n\n"
        "Every row is produced by `tests/test_cli_errors.py`, which runs the real CLI and checks exit code 2, "
        "a single line on stderr, and no traceback. Regenerate with "
        "`UPDATE_ERRORS_DOC=1 .venv/bin/python -m pytest tests/test_cli_errors.py`.\n\n"
        "| input | message |\n|---|---|\n" + "\n".join(rows) + "\n"
    )


def doc_messages() -> dict[str, str]:
    """The message of each case as docs/ERRORS.md shows it (rows naming no case are left out)."""
    by_label = {name.replace("_", " "): name for name in CASES}
    rows = (
        (re.fullmatch(r"\| (.+?) \| `(.*)` \|", line) for line in DOC.read_text().splitlines()) if DOC.exists() else ()
    )
    return {by_label[m.group(1)]: m.group(2) for m in rows if m and m.group(1) in by_label}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, cli, tmp_path, tiny_recipe, monkeypatch):
    """The case's clean one-line error, and the same line (paths as TMP) in its row of docs/ERRORS.md."""
    fn = CASES[name]
    args = (cli, tmp_path, tiny_recipe) + ((monkeypatch,) if "monkeypatch" in fn.__code__.co_varnames else ())
    result, fragment = fn(*args)
    line = assert_clean_error(result, fragment).replace(str(tmp_path), "TMP")
    if UPDATE:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(render({**doc_messages(), name: line}))
    assert doc_messages().get(name) == line, "docs/ERRORS.md is stale: regenerate it (see its first paragraph)"


def test_errors_doc_matches_the_messages():
    """docs/ERRORS.md is exactly the rendered table: the heading, one row per case in CASES order, no rows
    for removed cases. Each row's message is checked by its own case above, so this needs no case to run."""
    messages = doc_messages()
    if UPDATE:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(render(messages))
    assert DOC.read_text() == render(messages), "docs/ERRORS.md is stale: regenerate it (see its first paragraph)"
    missing = [name for name in CASES if not messages.get(name)]
    assert not missing, f"docs/ERRORS.md has no message for {missing}: regenerate it (see its first paragraph)"
