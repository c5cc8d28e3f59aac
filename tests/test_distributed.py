"""Data-parallel training through torchrun with 2 gloo ranks on CPU (real processes, real CLI)."""

import os
import random
import subprocess
import sys
from pathlib import Path

import torch

from conftest import REPO, write_recipe
from test_cli_seq2seq import make_reversal_corpus, write_reversal_recipe


def run_textgen(args: list, cwd: Path, nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "textgen", "train", *map(str, args)] + (["--nproc", str(nproc)] if nproc > 1 else [])
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_two_ranks_of_batch_b_step_like_one_process_of_batch_2b(tmp_path):
    # SGD: Adam's first step is lr*g/|g|, which turns summation-order round-off in tiny gradients into
    # visible weight differences; SGD compares the averaged gradients themselves.
    rng = random.Random(0)  # aperiodic text, so every stream holds different characters
    corpus = tmp_path / "random.txt"
    corpus.write_text("".join(rng.choice("abcdefgh \n") for _ in range(6000)))
    recipe = write_recipe(tmp_path / "tiny.toml", corpus, max_steps=1, eval_every=1, clip=0.5,
                          optimizer="sgd", lr=1.0)
    run_textgen(["-r", recipe, "--set", "train.batch_size=2", "-o", "ddp.pt", "--run-dir", "ddp"], tmp_path, nproc=2)
    for batch in (4, 2):
        run_textgen(["-r", recipe, "--set", f"train.batch_size={batch}", "-o", f"b{batch}.pt", "--run-dir", f"b{batch}"],
                    tmp_path)
    ddp, double, half = (weights(tmp_path / f"{run}/last.pt") for run in ("ddp", "b4", "b2"))
    assert ddp.keys() == double.keys() and len(ddp) >= 5
    for key in double:
        torch.testing.assert_close(ddp[key], double[key], rtol=1e-5, atol=1e-6, msg=key)
    # rank 0's half of the data alone lands elsewhere: the other rank's gradient was really averaged in
    assert max(float((ddp[k] - half[k]).abs().max()) for k in ddp) > 1e-4
    assert torch.load(tmp_path / "ddp/last.pt", weights_only=True)["train_state"]["world"] == 2


def test_mixer_under_two_ranks_trains_in_sync_and_resumes_on_one(tmp_path):
    """Sampling and rewards per rank, baseline regressor in sync (the trainer checks replica checksums)."""
    corpus = make_reversal_corpus(tmp_path)
    recipe = write_reversal_recipe(tmp_path / "mixer.toml", corpus, "toy reversal, MIXER", hidden=32,
                                   train={"lr": 0.01, "max_tokens": 120, "max_steps": 12, "eval_every": 6,
                                          "valid_metric": "bleu4", "log_every": 2},
                                   objective={"name": "mixer", "mixer_T": 4, "mixer_delta": 2, "mixer_xent_epochs": 0,
                                              "mixer_epochs_per_stage": 1})
    run_textgen(["-r", recipe, "-o", "m.pt", "--run-dir", "run"], tmp_path, nproc=2)
    rows = (tmp_path / "run/metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    rewards = [r.split(",")[header.index("reward")] for r in rows[1:]]
    assert any(rewards), "the REINFORCE part ran (rewards logged)"
    saved = torch.load(tmp_path / "run/last.pt", weights_only=True)["train_state"]
    assert saved["world"] == 2 and saved["step"] == 12 and len(saved["ranks"]) == 2
    # resume the 2-rank run in one process with a bigger budget: the step is rescaled to the same data position
    baseline = saved["task"]["objective"]["baseline.weight"]
    assert baseline.abs().max() > 0  # the regressor has learned something worth keeping
    done = run_textgen(["--resume", tmp_path / "run/last.pt", "--set", "train.max_steps=25", "-o", "m2.pt"], tmp_path)
    resumed = torch.load(tmp_path / "run/last.pt", weights_only=True)["train_state"]
    assert resumed["world"] == 1 and resumed["step"] == 25, done.stderr[-500:]
    steps = [int(r.split(",")[0]) for r in (tmp_path / "run/metrics.csv").read_text().splitlines()[1:]]
    assert min(s for s in steps if s > 12) == 25  # 12 steps x 2 ranks = 24 one-process batches consumed
    # one more update moved the regressor a little; a reset would have thrown its 12 steps away
    after = resumed["task"]["objective"]["baseline.weight"]
    assert (after - baseline).abs().max() < 0.5 * baseline.abs().max()


def test_a_rank_without_its_gpu_says_so_itself(cli, tiny_recipe, monkeypatch):
    """Only rank 0 prints ordinary errors (all ranks share them); a device error is this rank's alone."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    result = cli("train", "-r", tiny_recipe, "--device", "cuda")
    assert result.code == 2 and result.err.startswith("error: rank 1: device 'cuda' asked for"), result.err
    quiet = cli("train", "-r", tiny_recipe, "--set", "train.nope=1")  # the same on every rank: rank 0 reports it
    assert quiet.code == 2 and quiet.err == ""
