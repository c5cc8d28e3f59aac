"""End to end through the real CLI: train a tiny recipe, then sample and evaluate its checkpoint."""

import json

import pytest
import torch

from tests.conftest import ARCHS, write_recipe

# tests that take it run the tiny recipe (conftest.tiny_recipe) with each architecture
each_arch = pytest.mark.parametrize("tiny_recipe", list(ARCHS), indirect=True)


@each_arch
def test_train_sample_eval_round_trip(cli, tiny_recipe, tmp_path):
    result = cli("train", "--recipe", tiny_recipe, "--output", "m.pt", "--run-dir", "run", "--results", "r.json")
    assert result.code == 0, result.err
    assert (tmp_path / "m.pt").is_file() and (tmp_path / "run" / "last.pt").is_file()
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("step,epoch,tokens,seconds,lr,train_loss,valid_loss")
    assert "[model]" in (tmp_path / "run" / "recipe.toml").read_text()
    saved = json.loads((tmp_path / "r.json").read_text())
    assert set(saved) >= {"command", "metrics", "data", "seconds", "hardware", "git_commit"}
    assert saved["command"].startswith("textgen train --recipe")
    assert saved["metrics"]["steps"] == 20 and saved["metrics"]["valid_loss"] > 0

    first = cli("sample", "m.pt", "--prime", "the ", "--length", "40", "--seed", "3")
    second = cli("sample", "m.pt", "--prime", "the ", "--length", "40", "--seed", "3")
    assert first.code == 0 and first.out == second.out and first.out.startswith("the ")
    assert len(first.out) == len("the ") + 40 + 1
    greedy = cli("sample", "m.pt", "--prime", "the ", "--length", "30", "--temperature", "0")
    assert (
        greedy.out
        == cli("sample", "m.pt", "--prime", "the ", "--length", "30", "--temperature", "0", "--seed", "9").out
    )

    scored = cli("eval", "m.pt", "--split", "valid", "--json")
    assert scored.code == 0, scored.err
    metrics = json.loads(scored.out)["metrics"]
    assert abs(metrics["valid_ppl"] - torch.tensor(metrics["valid_loss"]).exp().item()) < 0.05
    assert "valid_bpc" in metrics


@pytest.mark.parametrize("arch", list(ARCHS))
def test_word_level_training_and_sampling(cli, tmp_path, tiny_corpus, arch):
    recipe = write_recipe(tmp_path / "w.toml", tiny_corpus, ARCHS[arch], bptt=5)
    recipe.write_text(recipe.read_text().replace('level = "char"', 'level = "word"'))
    assert cli("train", "-r", recipe, "-o", "w.pt", "--run-dir", "run").code == 0
    out = cli("sample", "w.pt", "--prime", "the cat", "--length", "12", "--seed", "1")
    assert out.code == 0 and out.out.startswith("the cat ")
    assert cli("sample", "w.pt", "--prime", "the zebra").code == 2


def test_set_override_reaches_training(cli, tiny_recipe, tmp_path):
    result = cli(
        "train",
        "-r",
        tiny_recipe,
        "--set",
        "train.max_steps=3",
        "--set",
        "model.cell=gru",
        "-o",
        "g.pt",
        "--run-dir",
        "run",
        "--json",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["metrics"]["steps"] == 3
    state = torch.load(tmp_path / "g.pt", weights_only=True)
    assert state["recipe"]["model"]["cell"] == "gru"


def test_help_lists_commands_and_examples(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("train", "sample", "eval", "data", "recipes"):
        assert command in result.out
    for command in (
        ["train"],
        ["sample"],
        ["eval"],
        ["decode"],
        ["plot"],
        ["recipes"],
        ["data", "list"],
        ["data", "get"],
        ["data"],
    ):
        assert "Example" in cli(*command, "--help").out, command
    # help texts that name a default in brackets must show it (rich would eat an unescaped [..] as markup)
    flat = " ".join(cli("decode", "--help").out.replace("│", " ").split())
    assert "[default: stdin]" in flat and "[default: the recipe's]" in flat


def test_recipes_command_lists_descriptions(cli, monkeypatch):
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    out = cli("recipes").out
    assert "ptb-small" in out and "Zaremba" in out


def test_interactive_sampling_answers_each_prime(cli, tiny_recipe, monkeypatch):
    import io
    import sys

    assert cli("train", "-r", tiny_recipe, "-o", "m.pt", "--run-dir", "run").code == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("the \nXYZ\nthe cat\n"))
    result = cli("sample", "m.pt", "--interactive", "--length", "5", "--seed", "1")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("the ") and lines[1].startswith("the cat")
    assert "not in the model's vocabulary" in result.err  # a bad prime is reported, the loop goes on
    assert result.err.count("prime> ") == 4


def test_tensorboard_logging_when_installed(cli, tiny_recipe, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra (pip install 'textgen[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli("train", "-r", tiny_recipe, "-o", "m.pt", "--run-dir", "run", "--set", "train.tensorboard=true")
    assert result.code == 0, result.err
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"train_loss", "valid_loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("valid_loss")] == [10, 20]


@each_arch
def test_bf16_training_learns_and_keeps_fp32_weights(cli, tiny_recipe, tmp_path):
    import torch

    result = cli(
        "train",
        "-r",
        tiny_recipe,
        "--set",
        "train.precision=bf16",
        "--set",
        "train.max_steps=40",
        "-o",
        "bf16.pt",
        "--run-dir",
        "run",
    )
    from textgen.precision import cpu_runs_bf16_lstm

    lstm = "transformer" not in tiny_recipe.read_text()  # a Transformer has no LSTM: it runs bf16 on any CPU
    if lstm and not cpu_runs_bf16_lstm():  # AVX2-only CPUs: one line before any training, not a oneDNN traceback
        assert result.code == 2 and "bf16 needs a CPU with AVX512-BF16 or AMX" in result.err, result.err
        assert "Traceback" not in result.err and not (tmp_path / "bf16.pt").exists()
        return
    assert result.code == 0, result.err
    losses = [
        float(r.split(",")[5]) for r in (tmp_path / "run/metrics.csv").read_text().splitlines()[1:] if r.split(",")[5]
    ]
    assert losses[-1] < 0.8 * losses[0]
    weights = torch.load(tmp_path / "bf16.pt", weights_only=True)["model"]
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())


def test_log_lines_are_not_wrapped_when_stderr_is_not_a_terminal(cli, tiny_recipe, tmp_path):
    """A log file keeps each message on one line, however long (rich wraps at 80 columns by default)."""
    run_dir = "run-" + "x" * 120
    result = cli("train", "-r", tiny_recipe, "--set", "train.max_steps=2", "-o", "m.pt", "--run-dir", run_dir)
    assert result.code == 0, result.err
    header = next(line for line in result.err.splitlines() if "parameters" in line)
    assert "steps/epoch" in header and header.endswith(f"run dir {run_dir}")


def test_a_run_stopped_by_its_time_budget_says_so_last_and_in_its_results(cli, tiny_recipe, tmp_path):
    result = cli(
        "train", "-r", tiny_recipe, "--set", "train.max_minutes=0.0001", "-o", "m.pt", "--run-dir", "run",
        "--results", "r.json",
    )  # fmt: skip
    assert result.code == 0, result.err
    saved = json.loads((tmp_path / "r.json").read_text())
    steps = saved["metrics"]["steps"]
    stopped = f"stopped on its time budget (train.max_minutes = 0.0001) after {steps} of 20 updates"
    assert steps < 20 and saved["stopped"] == stopped
    assert result.out.strip().splitlines()[-1].endswith(stopped)


def test_resuming_a_finished_run_says_no_steps_remain(cli, tiny_recipe, tmp_path):
    assert cli("train", "-r", tiny_recipe, "--set", "train.max_steps=6", "-o", "m.pt", "--run-dir", "run").code == 0
    resumed = cli("train", "--resume", "run/last.pt", "--set", "train.max_steps=4")
    assert resumed.code == 0, resumed.err
    assert "no steps remained: the checkpoint is at step 6 of 4" in resumed.err
    assert "nan" not in resumed.err + resumed.out


def test_lm_eval_shows_a_progress_bar_only_on_a_terminal(cli, tiny_recipe, tmp_path, monkeypatch):
    assert cli("train", "-r", tiny_recipe, "-o", "m.pt", "--run-dir", "run").code == 0
    piped = cli("eval", "m.pt", "--split", "valid", "--batch-size", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    shown = cli("eval", "m.pt", "--split", "valid", "--batch-size", "1")
    assert piped.code == shown.code == 0 and shown.out == piped.out
    assert "score valid" not in piped.err and "score valid" in shown.err
