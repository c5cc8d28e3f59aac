"""Bad input gets one line on stderr naming the problem and the fix, exit code 2, no traceback."""

import pytest

from tests.conftest import write_recipe


def assert_clean_error(result, *fragments):
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def trained(cli, tiny_recipe, tmp_path):
    assert cli("train", "-r", tiny_recipe, "-o", "m.pt", "--run-dir", "run", "--set", "train.max_steps=2").code == 0
    return tmp_path / "m.pt"


def test_missing_corpus(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.toml", tmp_path / "nope.txt")
    assert_clean_error(cli("train", "-r", recipe), "does not exist")


def test_empty_corpus(cli, tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    assert_clean_error(cli("train", "-r", write_recipe(tmp_path / "r.toml", tmp_path / "empty.txt")), "is empty")


def test_binary_corpus(cli, tmp_path):
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 10)
    assert_clean_error(cli("train", "-r", write_recipe(tmp_path / "r.toml", tmp_path / "bin.txt")), "binary")


def test_non_utf8_corpus(cli, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Größe und Maß\n".encode("latin-1") * 50)
    assert_clean_error(cli("train", "-r", write_recipe(tmp_path / "r.toml", tmp_path / "latin1.txt")), "not UTF-8")


def test_corpus_shorter_than_a_window(cli, tmp_path):
    (tmp_path / "short.txt").write_text("abcdefghij" * 3)
    recipe = write_recipe(tmp_path / "r.toml", tmp_path / "short.txt", bptt=64)
    assert_clean_error(cli("train", "-r", recipe), "BPTT window")


def test_unknown_recipe(cli):
    assert_clean_error(cli("train", "--recipe", "nope"), "available recipes are")


def test_unknown_key_and_bad_type_and_missing_equals(cli, tiny_recipe):
    assert_clean_error(cli("train", "-r", tiny_recipe, "--set", "train.lrate=1"), "valid keys are")
    assert_clean_error(cli("train", "-r", tiny_recipe, "--set", "train.batch_size=big"), "must be int")
    assert_clean_error(cli("train", "-r", tiny_recipe, "--set", "train.lr"), "no '='")


def test_toml_syntax_error(cli, tmp_path):
    (tmp_path / "bad.toml").write_text("[train\nlr = 1\n")
    assert_clean_error(cli("train", "-r", tmp_path / "bad.toml"), "line 1")


def test_missing_and_corrupt_checkpoints(cli, trained, tmp_path):
    assert_clean_error(cli("sample", "absent.pt"), "does not exist")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(trained.read_bytes()[:1000])
    assert_clean_error(cli("sample", torn), "truncated or corrupt")
    assert_clean_error(cli("eval", torn), "truncated or corrupt")


def test_wrong_format_version(cli, trained, tmp_path):
    import torch

    payload = torch.load(trained, weights_only=True)
    payload["format"] = 99
    torch.save(payload, tmp_path / "future.pt")
    assert_clean_error(cli("sample", tmp_path / "future.pt"), "format version 99")


def test_sampling_arguments(cli, trained):
    assert_clean_error(cli("sample", trained, "--temperature", "-1"), "--temperature")
    assert_clean_error(cli("sample", trained, "--top-p", "0"), "--top-p")
    assert_clean_error(cli("sample", trained, "--top-p", "1.5"), "--top-p")
    assert_clean_error(cli("sample", trained, "--prime", "XYZ"), "not in the model's vocabulary")


def test_resume_with_a_different_recipe(cli, trained, tiny_recipe, tmp_path):
    last = tmp_path / "run" / "last.pt"
    result = cli("train", "-r", tiny_recipe, "--resume", last, "--set", "model.hidden=64")
    assert_clean_error(result, "model.hidden")


def test_unwritable_output(cli, tiny_recipe, tmp_path):
    (tmp_path / "plainfile").write_text("not a folder")  # not writable as a folder, even for root
    result = cli("train", "-r", tiny_recipe, "-o", tmp_path / "plainfile" / "m.pt", "--run-dir", "run")
    assert_clean_error(result, "writable")
    assert not (tmp_path / "run" / "metrics.csv").exists(), "the error must come before any training"
