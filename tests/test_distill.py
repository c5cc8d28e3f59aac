"""Sequence-level knowledge distillation (tasks/distill.py, data.distill_from): the distilled targets are the
teacher's beam output, decoded once, an interrupted decode goes on from its last whole chunk, and a student's
prepared training split holds them (alone or after the original pairs)."""

import json
import threading
from pathlib import Path

import pytest
from filelock import FileLock

import textgen
import textgen.device
from textgen.config import load_recipe
from textgen.data.parallel import read_lines
from textgen.data.prepared_parallel import prepare_parallel, training_sources_key
from textgen.errors import UserError
from textgen.tasks import distill
from textgen.tasks.seq2seq import Seq2SeqTask
from textgen.train.distributed import Dist


def student(trained_mt: Path, teachers: str, **data):
    """The toy reversal recipe (beside the teacher) distilled from `teachers`, with data.* overrides."""
    sets = [f"data.distill_from={json.dumps(teachers)}", *(f"data.{k}={json.dumps(v)}" for k, v in data.items())]
    return load_recipe(str(trained_mt.parent / "rev.toml"), sets)


def corpus_file(recipe, split: int, side: int) -> Path:
    return Path(recipe.data.corpus.split(";")[split].split(",")[side])


def test_distilled_targets_are_the_teachers_beam_output_decoded_once(trained_mt, monkeypatch):
    recipe = student(trained_mt, str(trained_mt))
    path = distill.distilled_targets(recipe)
    sources = read_lines(corpus_file(recipe, 0, 0))
    teacher = textgen.load(trained_mt)
    assert read_lines(path) == teacher.translate(sources)  # the recipe's [decode]: beam 3
    assert read_lines(path) != read_lines(corpus_file(recipe, 0, 1))  # not the references: the teacher errs
    manifest = json.loads((path.parent / distill.MANIFEST).read_text())
    assert manifest["metrics"]["sources"] == len(sources) and manifest["decode"]["beam"] == 3

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(distill, "decode_sources", fail)
    assert distill.distilled_targets(recipe) == path  # cached: found by its key, not decoded again


def test_an_ensemble_of_teachers_has_its_own_targets(trained_mt):
    one = distill.distilled_targets(student(trained_mt, str(trained_mt)))
    two = distill.distilled_targets(student(trained_mt, f"{trained_mt},{trained_mt}"))
    assert one.parent != two.parent  # keyed by the teachers
    sources = read_lines(corpus_file(student(trained_mt, str(trained_mt)), 0, 0))
    assert read_lines(two) == textgen.load([trained_mt, trained_mt]).translate(sources)


def test_an_interrupted_decode_keeps_its_whole_chunks_and_redoes_the_rest(trained_mt, monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(distill, "CHUNK", 50)
    recipe = student(trained_mt, str(trained_mt))
    full = read_lines(distill.distilled_targets(recipe))
    folder = next((tmp_path / "cache" / "distilled").iterdir())
    (folder / distill.TARGETS).unlink()
    # a crash after one whole chunk (marked, so that keeping it shows) and part of the next, cut mid-line
    (folder / f"{distill.TARGETS}.partial").write_text("kept\n" * 50 + "\n".join(full[50:70]) + "\npart")
    resumed = read_lines(distill.distilled_targets(recipe))
    assert resumed == ["kept"] * 50 + full[50:]
    assert json.loads((folder / distill.MANIFEST).read_text())["metrics"]["decoded_now"] == len(full) - 50


def test_a_run_waits_for_the_run_that_holds_the_decode_lock_and_reads_its_outputs(trained_mt, monkeypatch, tmp_path):
    """Two students started side by side: the second says it waits, waits for the first's decode, and does not
    decode again."""
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    recipe = student(trained_mt, str(trained_mt))
    folder = distill.distilled_targets(recipe).parent
    (folder / distill.TARGETS).unlink()
    holding, waiting, said = threading.Event(), threading.Event(), []

    class Console:  # the waiting run's notice: the first run writes its outputs only once it is printed
        def print(self, text):
            said.append(text)
            waiting.set()

    def first_run():
        with FileLock(folder / distill.LOCK):
            holding.set()
            if waiting.wait(timeout=60):
                (folder / distill.TARGETS).write_text("decoded by the first run\n")

    def fail(*args, **kwargs):
        raise AssertionError("decoded while another run held the lock")

    monkeypatch.setattr(distill, "stderr_console", Console)
    monkeypatch.setattr(distill, "decode_sources", fail)
    thread = threading.Thread(target=first_run)
    thread.start()
    assert holding.wait(timeout=60)
    path = distill.distilled_targets(recipe)
    thread.join(timeout=60)
    assert said and "waiting for another run" in said[0]
    assert read_lines(path) == ["decoded by the first run"]


def test_a_distilled_student_fine_tunes_on_the_references(cli, trained_mt, monkeypatch, tmp_path):
    """init_from a student: its distill settings picked its targets, not its model, so a fine-tune drops them."""
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    recipe, steps = trained_mt.parent / "rev.toml", ("--set", "train.max_steps=1")
    made = cli(
        "train",
        "-r",
        recipe,
        *steps,
        "--set",
        f"data.distill_from={json.dumps(str(trained_mt))}",
        "-o",
        "s.pt",
        "--run-dir",
        "s",
    )
    assert made.code == 0, made.err
    tuned = cli("train", "-r", recipe, *steps, "--set", 'init_from="s.pt"', "-o", "f.pt", "--run-dir", "f")
    assert tuned.code == 0, tuned.err
    other = cli(
        "train",
        "-r",
        recipe,
        *steps,
        "--set",
        'init_from="s.pt"',
        "--set",
        "data.lowercase=true",
        "-o",
        "g.pt",
        "--run-dir",
        "g",
    )
    assert other.code == 2 and "--set data.lowercase=false" in other.err  # other [data] keys are still checked


def test_the_key_follows_the_training_sources_only(tmp_path):
    for name in ("train.de", "train.en", "valid.de", "valid.en"):
        (tmp_path / name).write_text("a b\n")
    corpus = f"{tmp_path}/train.de,{tmp_path}/train.en;{tmp_path}/valid.de,{tmp_path}/valid.en"
    key = training_sources_key(corpus)
    (tmp_path / "valid.de").write_text("another source\n")  # sizes change, so remembered sha256s are not reused
    (tmp_path / "train.en").write_text("another target\n")
    assert training_sources_key(corpus) == key
    (tmp_path / "valid.de").unlink()  # the other splits are not read at all
    assert training_sources_key(corpus) == key
    (tmp_path / "train.de").write_text("another source\n")
    assert training_sources_key(corpus) != key


@pytest.mark.parametrize(
    ("text", "chunk", "kept"),
    [
        ("", 2, ""),
        ("a\n", 2, ""),
        ("a\nb", 2, ""),
        ("a\nb\n", 2, "a\nb\n"),
        ("a\nb\nc", 2, "a\nb\n"),
        ("a\nb\nc\nd\ne\n", 2, "a\nb\nc\nd\n"),
        ("a\nb\nc", 1, "a\nb\n"),
    ],
)
def test_a_partial_file_is_cut_after_its_last_whole_chunk(tmp_path, text, chunk, kept):
    path = tmp_path / "train.tgt.partial"
    path.write_bytes(text.encode())
    assert distill._whole_lines(path, chunk) == kept.count("\n")
    assert path.read_bytes() == kept.encode()


@pytest.mark.parametrize("mix", ["distilled", "both"])
def test_the_students_training_split_holds_the_distilled_targets(trained_mt, mix, tmp_path):
    recipe = student(trained_mt, str(trained_mt), distill_targets=mix)
    sources, originals = read_lines(corpus_file(recipe, 0, 0)), read_lines(corpus_file(recipe, 0, 1))
    marked = tmp_path / "distilled.tgt"  # stands for a teacher's outputs: lines no corpus holds
    marked.write_text("".join(f"{s} {i % 7}\n" for i, s in enumerate(sources)))
    data = prepare_parallel(recipe, distilled=marked)
    expected = read_lines(marked) if mix == "distilled" else originals + read_lines(marked)
    assert data.split("train").targets[:] == expected
    assert len(data.split("train").src) == len(expected)
    assert data.split("valid").targets[:] == read_lines(corpus_file(recipe, 1, 1))
    other = "both" if mix == "distilled" else "distilled"
    assert (
        data.folder
        != prepare_parallel(student(trained_mt, str(trained_mt), distill_targets=other), distilled=marked).folder
    )
    assert data.folder != prepare_parallel(load_recipe(str(trained_mt.parent / "rev.toml"))).folder


def test_a_distilled_file_of_another_length_is_refused(trained_mt, tmp_path):
    recipe = student(trained_mt, str(trained_mt))
    short = tmp_path / "short.tgt"
    short.write_text("a b\n" * 3)
    with pytest.raises(UserError, match="one line per training source"):
        prepare_parallel(recipe, distilled=short)


def test_distill_from_names_missing_teachers_in_one_line(trained_mt, tmp_path):
    with pytest.raises(UserError, match="teacher checkpoint '.*nope.pt' does not exist"):
        distill.distilled_targets(student(trained_mt, f"{trained_mt},{tmp_path / 'nope.pt'}"))
    with pytest.raises(UserError, match="names no checkpoint"):
        distill.teacher_paths(" , ")


def test_a_data_parallel_student_needs_the_outputs_decoded_first(trained_mt, monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    recipe = student(trained_mt, str(trained_mt))
    with pytest.raises(UserError, match="decoded first: run textgen data prepare"):
        Seq2SeqTask._prepared(recipe, None, None, Dist(0, 2))
    distill.distilled_targets(recipe)
    assert Seq2SeqTask._prepared(recipe, None, None, Dist(0, 2)).split("train").targets[:] == read_lines(
        distill.distilled_targets(recipe)
    )


def test_data_prepare_distils_the_corpus_it_is_given(cli, trained_mt, tmp_path, monkeypatch):
    recipe = load_recipe(str(trained_mt.parent / "rev.toml"))
    src, tgt = corpus_file(recipe, 0, 0), corpus_file(recipe, 0, 1)
    (tmp_path / "few.src").write_text("".join(line + "\n" for line in read_lines(src)[:30]))
    (tmp_path / "few.tgt").write_text("".join(line + "\n" for line in read_lines(tgt)[:30]))
    corpus = f"few.src,few.tgt;{recipe.data.corpus.split(';', 1)[1]}"
    args = ("data", "prepare", corpus, "-r", trained_mt.parent / "rev.toml", "--set", f"data.distill_from={trained_mt}")
    r = cli(*args, "--device", "nonsense")
    assert r.code == 2 and "unknown device 'nonsense'" in r.err
    seen, real = [], distill.distilled_targets  # the device given reaches the teachers (then the CPU runs them)
    with monkeypatch.context() as patch:
        patch.setattr(textgen.device, "resolve_device", lambda name: f"resolved {name}")
        patch.setattr(distill, "distilled_targets", lambda recipe, device: seen.append(device) or real(recipe))
        r = cli(*args, "--device", "cpu")
    assert r.code == 0, r.err
    assert seen == ["resolved cpu"]
    made = Path(r.err.split("teachers' outputs in ")[1].split(" (")[0])
    assert read_lines(made) == textgen.load(trained_mt).translate(read_lines(tmp_path / "few.src"))


def test_a_student_trains_from_the_command_line(cli, trained_mt, tmp_path):
    sets = [f"data.distill_from={json.dumps(str(trained_mt))}", "train.max_steps=3"]
    r = cli("train", "-r", trained_mt.parent / "rev.toml", *(a for s in sets for a in ("--set", s)), "-o", "s.pt")
    assert r.code == 0, r.err
    assert "training targets: the outputs of" in r.err
    assert textgen.load(tmp_path / "s.pt").recipe.data.distill_from == str(trained_mt)
