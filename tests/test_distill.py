"""Sequence-level knowledge distillation (tasks/distill.py, data.distill_from): the distilled targets are the
teacher's beam output, an interrupted decode goes on from its last whole chunk, and a student's prepared training
split holds them (alone or after the original pairs)."""

import json
from pathlib import Path

import pytest

import textgen
from textgen.config import load_recipe
from textgen.data.parallel import read_lines
from textgen.data.prepared_parallel import prepare_parallel
from textgen.errors import UserError
from textgen.tasks import distill


def student(trained_mt: Path, teachers: str, **data) -> object:
    """The toy reversal recipe (beside the teacher) distilled from `teachers`, with data.* overrides."""
    sets = [f"data.distill_from={json.dumps(teachers)}", *(f"data.{k}={json.dumps(v)}" for k, v in data.items())]
    return load_recipe(str(trained_mt.parent / "rev.toml"), sets)


def train_sources(recipe) -> list[str]:
    src = recipe.data.corpus.split(";")[0].split(",")[0]
    return read_lines(Path(src))


def test_distilled_targets_are_the_teachers_beam_output(trained_mt):
    recipe = student(trained_mt, str(trained_mt))
    path = distill.distilled_targets(recipe)
    sources = train_sources(recipe)
    teacher = textgen.load(trained_mt)
    assert read_lines(path) == teacher.translate(sources)  # the recipe's [decode]: beam 3
    assert read_lines(path) != teacher.translate(sources, beam=1) or teacher.recipe.decode.beam == 1
    manifest = json.loads((path.parent / distill.MANIFEST).read_text())
    assert manifest["metrics"]["sources"] == len(sources) and manifest["decode"]["beam"] == 3
    assert distill.distilled_targets(recipe) == path  # cached: the same file, not decoded again


def test_an_ensemble_of_teachers_has_its_own_targets(trained_mt):
    one = distill.distilled_targets(student(trained_mt, str(trained_mt)))
    two = distill.distilled_targets(student(trained_mt, f"{trained_mt},{trained_mt}"))
    assert one.parent != two.parent  # keyed by the teachers
    sources = train_sources(student(trained_mt, str(trained_mt)))
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


@pytest.mark.parametrize("mix", ["distilled", "both"])
def test_the_students_training_split_holds_the_distilled_targets(trained_mt, mix):
    recipe = student(trained_mt, str(trained_mt), distill_targets=mix)
    path = distill.distilled_targets(recipe)
    data = prepare_parallel(recipe, distilled=path)
    sources, originals = train_sources(recipe), read_lines(Path(recipe.data.corpus.split(";")[0].split(",")[1]))
    expected = read_lines(path) if mix == "distilled" else originals + read_lines(path)
    assert data.split("train").targets[:] == expected
    assert len(data.split("train").src) == len(sources) * (1 if mix == "distilled" else 2)
    assert data.split("valid").targets[:] == read_lines(Path(recipe.data.corpus.split(";")[1].split(",")[1]))
    plain = prepare_parallel(load_recipe(str(trained_mt.parent / "rev.toml")))
    assert plain.folder != data.folder  # the distilled corpus is prepared apart from the original


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


def test_a_student_trains_from_the_command_line(cli, trained_mt, tmp_path):
    r = cli(
        "train",
        "-r",
        trained_mt.parent / "rev.toml",
        "--set",
        f"data.distill_from={json.dumps(str(trained_mt))}",
        "--set",
        "train.max_steps=3",
        "-o",
        tmp_path / "student.pt",
    )
    assert r.code == 0, r.err
    assert textgen.load(tmp_path / "student.pt").recipe.data.distill_from == str(trained_mt)
