"""Resume means resume: an interrupted run, resumed, ends bit-identical to an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ARCHS, REPO, arch_sets

STEPS = 400


def final_weights(path):
    payload = torch.load(path, weights_only=True)
    assert payload["train_state"]["step"] == STEPS
    return payload["model"], payload["train_state"]["optimizer"]["state"]


def kill_after_first_checkpoint(args, cwd, sig):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "textgen", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = cwd / "run" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.parametrize(
    "sig, code, tiny_recipe",
    [(signal.SIGKILL, -9, "recurrent"), (signal.SIGINT, 130, "recurrent"), (signal.SIGTERM, 143, "recurrent")]
    + [(signal.SIGKILL, -9, "transformer")],  # a Transformer LM saves no state across windows (hidden: None)
    indirect=["tiny_recipe"],
)
def test_interrupted_then_resumed_equals_straight_run(cli, tiny_recipe, tmp_path, sig, code):
    common = ["--set", f"train.max_steps={STEPS}", "--set", "train.eval_every=20", "--set", "model.dropout=0.1"]
    straight = tmp_path / "straight"
    straight.mkdir()
    assert cli("train", "-r", tiny_recipe, *common, "-o", straight / "a.pt", "--run-dir", straight / "run").code == 0

    rc, err = kill_after_first_checkpoint(
        ["train", "-r", tiny_recipe, *common, "-o", "b.pt", "--run-dir", "run"], tmp_path, sig
    )
    assert rc == code, err
    if sig != signal.SIGKILL:
        assert "textgen train --resume" in err
    stopped_at = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["step"]
    assert 0 < stopped_at < STEPS, "the run must really have been interrupted"

    resumed = cli("train", "--resume", tmp_path / "run" / "last.pt", "-o", "b.pt")
    assert resumed.code == 0, resumed.err
    weights_a, opt_a = final_weights(straight / "run" / "last.pt")
    weights_b, opt_b = final_weights(tmp_path / "run" / "last.pt")
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    for key in opt_a:
        assert torch.equal(opt_a[key]["exp_avg"], opt_b[key]["exp_avg"])
    steps = [int(line.split(",")[0]) for line in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps), "metrics.csv must not repeat steps after a resume"


def as_flat_objective_keys(path):
    """Rewrite a checkpoint's stored recipe with the flat [objective] keys of earlier versions (mixer_T, reward)."""
    from textgen.config import MOVED_TO

    payload = torch.load(path, weights_only=True)
    tables = payload["recipe"]["objective"]
    flat = {key: value for key, value in tables.items() if not isinstance(value, dict)}
    for old, homes in MOVED_TO.items():
        table, _, key = homes[0].partition(".")
        flat[old] = tables[table][key]
    payload["recipe"]["objective"] = flat
    torch.save(payload, path)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_seq2seq_mixer_resume_continues_schedule_and_equals_straight_run(cli, tmp_path, arch):
    from tests.test_cli_seq2seq import make_reversal_corpus

    corpus = make_reversal_corpus(tmp_path)
    recipe = tmp_path / "mixer.toml"
    recipe.write_text(f'''task = "seq2seq"
[data]
corpus = "{corpus}"
tokenizer = "word"
[model]
layers = 1
hidden = 16
embed = 8
dropout = 0.1
[train]
max_tokens = 200
eval_every = 10
[objective]
name = "mixer"
[objective.mixer]
T = 4
delta = 2
xent_epochs = 1
epochs_per_stage = 1
''')
    model = arch_sets(arch)
    common = ["-r", recipe, *model, "--set", "train.max_steps=60"]
    assert cli("train", *common, "-o", "a.pt", "--run-dir", "a").code == 0
    assert cli("train", "-r", recipe, *model, "--set", "train.max_steps=30", "-o", "b.pt", "--run-dir", "b").code == 0
    as_flat_objective_keys(tmp_path / "b" / "last.pt")  # a checkpoint of an earlier version resumes the same
    assert cli("train", *common, "--resume", "b/last.pt", "-o", "b.pt").code == 0
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    baseline = "baseline.weight"
    assert torch.equal(a["train_state"]["task"]["objective"][baseline], b["train_state"]["task"]["objective"][baseline])
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    s_values = {r.split(",")[header.index("s")] for r in rows[1:] if r.split(",")[header.index("s")]}
    assert len(s_values) > 1, "the MIXER schedule must have moved past the XENT stage"


def test_resume_without_output_keeps_writing_the_first_runs_best_checkpoint(cli, tiny_recipe, tmp_path):
    """The best-checkpoint path is part of the run: a resume that leaves out -o must not report (or write)
    a path of its own invention."""
    first = cli("train", "-r", tiny_recipe, "--set", "train.max_steps=10", "-o", "models/best.pt", "--run-dir", "run")
    assert first.code == 0, first.err
    written = (tmp_path / "models" / "best.pt").stat().st_mtime_ns
    resumed = cli("train", "--resume", "run/last.pt", "--set", "train.max_steps=30")
    assert resumed.code == 0, resumed.err
    assert f"best checkpoint: {tmp_path / 'models' / 'best.pt'};" in resumed.out
    assert not (tmp_path / "tiny.pt").exists()
    best = torch.load(tmp_path / "models" / "best.pt", weights_only=True)
    assert best["train_state"]["step"] > 10 and (tmp_path / "models" / "best.pt").stat().st_mtime_ns > written


def test_resume_with_the_recipe_keeps_the_runs_set_overrides(cli, tiny_recipe, tmp_path):
    """`--set train.max_steps=N` given to the first run holds for its resume, even with --recipe repeated and
    the override left out; a new --set goes on top."""
    common = ["--set", f"train.max_steps={STEPS}", "--set", "train.eval_every=20"]
    rc, err = kill_after_first_checkpoint(
        ["train", "-r", tiny_recipe, *common, "-o", "b.pt", "--run-dir", "run"], tmp_path, signal.SIGINT
    )
    assert rc == 130, err
    stopped_at = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["step"]
    assert 20 <= stopped_at < STEPS
    resumed = cli("train", "-r", tiny_recipe, "--resume", "run/last.pt", "-o", "b.pt")  # the recipe says 20 steps
    assert resumed.code == 0, resumed.err
    final_weights(tmp_path / "run" / "last.pt")  # ran on to STEPS
    more = cli("train", "-r", tiny_recipe, "--resume", "run/last.pt", "-o", "b.pt", "--set", "train.max_steps=420")
    assert more.code == 0, more.err
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["step"] == 420


def test_overwrite_lets_a_new_run_replace_a_checkpoint_and_start_its_own_log(cli, tiny_recipe, tmp_path):
    args = ("-r", tiny_recipe, "-o", "m.pt", "--run-dir", "run", "--set", "train.eval_every=5")
    assert cli("train", *args, "--set", "train.max_steps=10").code == 0
    refused = cli("train", *args, "--set", "train.max_steps=5")
    assert refused.code == 2 and "pass --overwrite" in refused.err
    again = cli("train", *args, "--set", "train.max_steps=5", "--overwrite")
    assert again.code == 0, again.err
    for path in (tmp_path / "m.pt", tmp_path / "run" / "last.pt"):
        assert torch.load(path, weights_only=True)["train_state"]["step"] == 5
    steps = [int(r.split(",")[0]) for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and max(steps) == 5, "the log holds the new run alone"
