"""Data-parallel training through torchrun with 2 gloo ranks on CPU (real processes, real CLI)."""

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ARCHS, REPO, write_recipe
from test_cli_seq2seq import make_reversal_corpus, write_reversal_recipe

from textgen.data.seqbatch import token_budget_batches


def run_textgen(args: list, cwd: Path, nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "textgen", "train", *map(str, args)] + (["--nproc", str(nproc)] if nproc > 1 else [])
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_two_ranks_of_batch_b_step_like_one_process_of_batch_2b(tmp_path, arch):
    # SGD: Adam's first step is lr*g/|g|, which turns summation-order round-off in tiny gradients into
    # visible weight differences; SGD compares the averaged gradients themselves.
    rng = random.Random(0)  # aperiodic text, so every stream holds different characters
    corpus = tmp_path / "random.txt"
    corpus.write_text("".join(rng.choice("abcdefgh \n") for _ in range(6000)))
    model = ARCHS[arch]
    recipe = write_recipe(
        tmp_path / "tiny.toml", corpus, model, max_steps=1, eval_every=1, clip=0.5, optimizer="sgd", lr=1.0
    )
    run_textgen(["-r", recipe, "--set", "train.batch_size=2", "-o", "ddp.pt", "--run-dir", "ddp"], tmp_path, nproc=2)
    for batch in (4, 2):
        run_textgen(
            ["-r", recipe, "--set", f"train.batch_size={batch}", "-o", f"b{batch}.pt", "--run-dir", f"b{batch}"],
            tmp_path,
        )
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
    recipe = write_reversal_recipe(
        tmp_path / "mixer.toml",
        corpus,
        "toy reversal, MIXER",
        hidden=32,
        train={
            "lr": 0.01,
            "max_tokens": 120,
            "max_steps": 12,
            "eval_every": 6,
            "valid_metric": "bleu4",
            "log_every": 2,
        },
        objective={"name": "mixer"},
        **{"objective.mixer": {"T": 4, "delta": 2, "xent_epochs": 0, "epochs_per_stage": 1}},
    )
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


def test_two_ranks_with_unequal_token_counts_step_like_one_process_with_both_batches(tmp_path, cli):
    """Token-budget batches of 40 padded tokens cut 12 pairs of 4 target tokens (with EOS) into batches of
    10 and 2 pairs: one rank holds 40 target tokens, the other 8. One process with a budget of 48 trains
    on both in one batch. The step must be the same: the summed loss over all ranks' tokens, which a
    normalisation by each rank's own tokens (mean of per-rank means) would break."""
    rng = random.Random(1)
    words = "a b c d e f g h".split()
    for split, n in (("train", 12), ("valid", 4)):
        pairs = [[rng.choice(words) for _ in range(3)] for _ in range(n)]
        (tmp_path / f"{split}.src").write_text("".join(" ".join(p) + "\n" for p in pairs))
        (tmp_path / f"{split}.tgt").write_text("".join(" ".join(reversed(p)) + "\n" for p in pairs))
    corpus = ";".join(f"{tmp_path}/{s}.src,{tmp_path}/{s}.tgt" for s in ("train", "valid"))
    assert sorted(map(len, token_budget_batches([3] * 12, [3] * 12, 40))) == [2, 10]  # 8 vs 40 tokens
    assert list(map(len, token_budget_batches([3] * 12, [3] * 12, 48))) == [12]
    recipes = {
        name: write_reversal_recipe(
            tmp_path / f"{name}.toml",
            corpus,
            "unequal ranks",
            hidden=16,
            train={
                "optimizer": "sgd",
                "lr": 1.0,
                "clip": 0.0,
                "max_tokens": budget,
                "max_steps": 1,
                "eval_every": 1,
                "log_every": 1,
            },
        )
        for name, budget in (("ddp", 40), ("one", 48))
    }
    run_textgen(["-r", recipes["ddp"], "-o", "ddp.pt", "--run-dir", "ddp"], tmp_path, nproc=2)
    single = cli("train", "-r", recipes["one"], "-o", "one.pt", "--run-dir", "one")  # in this process: quicker
    assert single.code == 0, single.err
    ddp, one = (torch.load(tmp_path / f"{run}/last.pt", weights_only=True) for run in ("ddp", "one"))
    assert ddp["train_state"]["world"] == 2 and one["train_state"]["world"] == 1
    assert ddp["train_state"]["tokens"] == one["train_state"]["tokens"] == 48  # both saw all 12 pairs
    assert ddp["model"].keys() == one["model"].keys() and len(one["model"]) >= 5
    for key, value in one["model"].items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_mixer_step_under_two_ranks_equals_one_process_replaying_each_ranks_samples(tmp_path, arch):
    """One MIXER step at s = T - delta = 2 (XENT on two target tokens, REINFORCE with the learned baseline
    after them) on two ranks, against the same step computed in this process.

    Each rank samples its rollouts from its own RNG stream (seeded seed + 1000 * rank before its task is
    built), so no single process with one stream can draw the same samples for the union of the batches.
    What is exact is the step given the samples: here each rank's stream is reproduced (seed, build the
    task as that rank, keep the RNG state), each rank's batch gets its loss from rank 0's weights with that
    stream, and one SGD step is taken on the summed losses over the tokens of both ranks (XENT tokens plus
    sampled tokens, which differ between the ranks). The two-rank run's model and baseline regressor must
    land on the same weights; per-rank normalisation would land elsewhere (checked here too). The objective
    calls encode, prefix and the step methods on the model DDP wraps (through the task), not on the wrapper:
    DDP's reducer sees every parameter those calls use, for either architecture."""
    from textgen.config import load_recipe
    from textgen.tasks import build_task
    from textgen.train.distributed import Dist
    from textgen.train.loop import seed_everything

    corpus = make_reversal_corpus(tmp_path)
    lr, baseline_lr = 0.5, 0.5
    recipe = write_reversal_recipe(
        tmp_path / "mixer.toml",
        corpus,
        "toy reversal, MIXER step",
        hidden=16,
        train={
            "optimizer": "sgd",
            "lr": lr,
            "clip": 0.0,
            "max_tokens": 120,
            "max_steps": 1,
            "eval_every": 1,
            "log_every": 1,
        },
        model=ARCHS[arch],
        objective={"name": "mixer"},
        **{
            "objective.mixer": {"T": 4, "delta": 2, "xent_epochs": 0, "epochs_per_stage": 1, "baseline_lr": baseline_lr}
        },
    )
    run_textgen(["-r", recipe, "-o", "m.pt", "--run-dir", "run"], tmp_path, nproc=2)
    saved = torch.load(tmp_path / "run/last.pt", weights_only=True)

    cfg = load_recipe(str(recipe))
    python_state = random.getstate()
    with torch.random.fork_rng(devices=[]):  # this process's own RNG state is restored afterwards
        tasks, streams = [], []
        for rank in range(2):
            seed_everything(cfg, rank)
            tasks.append(build_task(cfg, None, Dist(rank, 2)))
            streams.append((torch.get_rng_state(), random.getstate()))  # rank's streams at its first step
        assert not torch.equal(streams[0][0], streams[1][0]), "the ranks sample from different streams"
        main = tasks[0]  # rank 0's weights: DDP broadcasts them to every rank
        params = list(main.model.parameters()) + list(main.objective.parameters())
        outs, grads = [], []
        for rank in range(2):
            torch.set_rng_state(streams[rank][0])
            random.setstate(streams[rank][1])
            out = main.objective(main.model, tasks[rank]._batch(0), step=0)
            outs.append(out)
            grads.append(torch.autograd.grad(out.loss_sum, params, allow_unused=True))
    random.setstate(python_state)
    assert all(o.logs["s"] == 2 and o.logs["reward"] > 0 for o in outs), "the REINFORCE part ran on both ranks"
    n0, n1 = outs[0].ntokens, outs[1].ntokens
    assert saved["train_state"]["tokens"] == n0 + n1 and n0 != n1
    rates = [lr] * len(list(main.model.parameters())) + [baseline_lr] * len(list(main.objective.parameters()))
    expected, per_rank_mean = [], []
    for p, rate, g0, g1 in zip(params, rates, *grads):
        g0, g1 = (torch.zeros_like(p) if g is None else g for g in (g0, g1))
        expected.append(p.detach() - rate * (g0 + g1) / (n0 + n1))
        per_rank_mean.append(p.detach() - rate * (g0 / n0 + g1 / n1) / 2)
    names = [k for k, _ in main.model.named_parameters()] + [k for k, _ in main.objective.named_parameters()]
    assert names[-2:] == ["baseline.weight", "baseline.bias"] and list(saved["model"]) == names[:-2]
    got = {**saved["model"], **saved["train_state"]["task"]["objective"]}
    for name, want in zip(names, expected):
        torch.testing.assert_close(got[name], want, rtol=1e-5, atol=1e-6, msg=name)
    # the comparison can tell all-rank from per-rank normalisation, and the baseline regressor really moved
    assert max(float((e - m).abs().max()) for e, m in zip(expected, per_rank_mean)) > 1e-3
    assert float(got["baseline.weight"].abs().max()) > 1e-3


def test_a_rank_without_its_gpu_says_so_itself(cli, tiny_recipe, monkeypatch):
    """Only rank 0 prints ordinary errors (all ranks share them); a device error is this rank's alone."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    result = cli("train", "-r", tiny_recipe, "--device", "cuda")
    assert result.code == 2 and result.err.startswith("error: rank 1: device 'cuda' asked for"), result.err
    quiet = cli("train", "-r", tiny_recipe, "--set", "train.nope=1")  # the same on every rank: rank 0 reports it
    assert quiet.code == 2 and quiet.err == ""


def start_nodes(cwd: Path, train_args: list) -> list[subprocess.Popen]:
    """Two `torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d` processes, as two nodes would run."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", "textgen-test",
            "-m", "textgen", "train", *map(str, train_args)]  # fmt: skip
    return [
        subprocess.Popen(node, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]


def test_two_nodes_under_torchrun_step_like_one_process_of_the_global_batch(tmp_path):
    """`torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d` started twice on this machine, as two
    nodes would be: the same step as one process with the global batch. textgen adds no launcher of its own;
    rank 0 prepares the corpus and the other node maps the same folder (shared storage)."""
    rng = random.Random(0)
    corpus = tmp_path / "random.txt"
    corpus.write_text("".join(rng.choice("abcdefgh \n") for _ in range(6000)))
    recipe = write_recipe(tmp_path / "tiny.toml", corpus, max_steps=1, eval_every=1, clip=0.5, optimizer="sgd", lr=1.0)
    procs = start_nodes(tmp_path, ["-r", recipe, "--set", "train.batch_size=2", "-o", "nodes.pt", "--run-dir", "nodes"])
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    run_textgen(["-r", recipe, "--set", "train.batch_size=4", "-o", "one.pt", "--run-dir", "one"], tmp_path)
    nodes, one = (torch.load(tmp_path / f"{run}/last.pt", weights_only=True) for run in ("nodes", "one"))
    assert nodes["train_state"]["world"] == 2 and one["train_state"]["world"] == 1
    for key, value in one["model"].items():
        torch.testing.assert_close(nodes["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_a_data_error_on_rank_0_stops_the_other_node_with_one_line(tmp_path):
    """Rank 0 prepares the corpus; when that fails, the other node's rank must not wait at a collective
    for it (no local launcher is there to kill it): it stops with one line too."""
    (tmp_path / "a.src").write_text("x y\ny z\n")
    (tmp_path / "a.tgt").write_text("y x\n")
    (tmp_path / "p.toml").write_text(
        'task = "seq2seq"\n[data]\ncorpus = "a.src,a.tgt;a.src,a.tgt"\ntokenizer = "word"\n'
    )
    procs = start_nodes(tmp_path, ["-r", "p.toml"])
    outputs = [p.communicate(timeout=120) for p in procs]
    errors = [line for _, err in outputs for line in err.splitlines() if line.startswith("error: ")]
    assert any("line-aligned" in line for line in errors), outputs
    # each node's torchrun reports its worker's exit code: 2, a clean UserError, on both (not a crash in a
    # collective on the node whose rank was waiting for rank 0)
    assert all(re.search(r"exitcode\s*:\s*2\b", err) for _, err in outputs), [err[-800:] for _, err in outputs]
