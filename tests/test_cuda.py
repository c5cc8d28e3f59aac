"""The GPU path end to end: runs only where torch sees a CUDA device (CI has none; the device check runs it).

On a CPU machine tests/test_device.py and tests/test_precision.py cover the device-independent
parts (tensor placement, loss scaling); these check what only a GPU can: NCCL-free single-GPU
training in fp16, resume with the CUDA random stream, and decoding on the GPU.
"""

import json

import pytest
import torch

from tests.test_cli_seq2seq import make_reversal_corpus, write_reversal_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none here")


@pytest.fixture
def mixer_recipe(tmp_path):
    corpus = make_reversal_corpus(tmp_path)
    return write_reversal_recipe(
        tmp_path / "mixer.toml",
        corpus,
        "toy reversal, MIXER",
        hidden=32,
        train={"lr": 0.01, "max_tokens": 200, "eval_every": 20, "log_every": 10},
        objective={"name": "mixer"},
        **{"objective.mixer": {"T": 4, "delta": 2, "xent_epochs": 2, "epochs_per_stage": 1}},
        decode={"beam": 3, "max_len_a": 1.0, "max_len_b": 2},
    )


def test_fp16_mixer_on_cuda_trains_and_resumes(cli, mixer_recipe, tmp_path):
    args = (
        "train",
        "-r",
        mixer_recipe,
        "-o",
        "gpu.pt",
        "--run-dir",
        "run",
        "--device",
        "cuda",
        "--set",
        "train.precision=fp16",
        "--json",
    )
    first = cli(*args, "--set", "train.max_steps=40")
    assert first.code == 0, first.err
    assert json.loads(first.out)["device"] == "cuda:0"
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]
    assert "cuda" in state["rng"] and state["scaler"]["scale"] > 0
    resumed = cli(*args, "--set", "train.max_steps=80", "--resume", "run/last.pt")
    assert resumed.code == 0, resumed.err
    metrics = json.loads(resumed.out)["metrics"]
    assert metrics["steps"] == 80 and metrics["best_valid_loss"] < 2.0  # XENT epochs 0-2, then MIXER (s = 2, 0)
    weights = torch.load(tmp_path / "gpu.pt", weights_only=True)["model"]
    assert all(w.device.type == "cpu" and w.dtype == torch.float32 for w in weights.values())


def test_cuda_and_cpu_decode_alike(cli, mixer_recipe, tmp_path):
    assert (
        cli(
            "train",
            "-r",
            mixer_recipe,
            "-o",
            "m.pt",
            "--run-dir",
            "run",
            "--device",
            "cuda",
            "--set",
            "train.max_steps=60",
            "--set",
            "objective.name=xent",
        ).code
        == 0
    )
    outputs = {}
    for device in ("cpu", "cuda"):
        result = cli("eval", "m.pt", "--split", "test", "--device", device, "--json", "--hyp-out", f"{device}.txt")
        assert result.code == 0, result.err
        assert json.loads(result.out)["metrics"]["device"].startswith(device)
        outputs[device] = (tmp_path / f"{device}.txt").read_text().splitlines()
    same = sum(a == b for a, b in zip(outputs["cpu"], outputs["cuda"]))
    assert same >= 0.95 * len(outputs["cpu"])


def test_lm_trains_and_samples_on_cuda(cli, tiny_recipe):
    assert (
        cli(
            "train",
            "-r",
            tiny_recipe,
            "-o",
            "lm.pt",
            "--run-dir",
            "run",
            "--device",
            "cuda",
            "--set",
            "train.precision=bf16",
        ).code
        == 0
    )
    first = cli("sample", "lm.pt", "--device", "cuda", "--seed", "3", "--length", "40")
    again = cli("sample", "lm.pt", "--device", "cuda", "--seed", "3", "--length", "40")
    assert first.code == 0 and first.out == again.out and len(first.out.strip()) > 0
