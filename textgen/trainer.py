"""The training loop: BPTT windows, clipping, LR schedule, validation, checkpoints, progress, resume.

Resume restores everything an uninterrupted run would still have in memory — weights, optimizer,
schedule, RNG states, data position and the carried hidden state — so the two end identically.
"""

from __future__ import annotations

import csv
import math
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from textgen import checkpoint
from textgen.config import Recipe, dump_toml, to_dict
from textgen.data.batching import batchify, num_windows, window
from textgen.errors import Interrupted, UserError
from textgen.lm import LMData, evaluate, metrics_from_loss, prepare_data, train_step
from textgen.models.lm import RNNLM
from textgen.schedule import LRSchedule, build_optimizer, set_lr
from textgen.data.vocab import vocab_from_dict

CSV_FIELDS = ["step", "epoch", "tokens", "seconds", "lr", "train_loss", "valid_loss", "valid_ppl", "tokens_per_s"]
# keys that may differ between a checkpoint's recipe and the one given with --resume
BUDGET_KEYS = {"epochs", "max_steps", "max_minutes", "eval_every", "log_every", "threads"}


@dataclass
class Counters:
    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0
    best_valid: float = math.inf
    history: list = field(default_factory=list)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def check_resume_recipe(saved: Recipe, given: Recipe) -> None:
    a, b = to_dict(saved), to_dict(given)
    for section in ("data", "model", "train"):
        for key, value in a[section].items():
            if section == "train" and key in BUDGET_KEYS:
                continue
            if b[section][key] != value:
                raise UserError(
                    f"--resume checkpoint was trained with {section}.{key}={value!r}, the recipe says {b[section][key]!r}: "
                    "resume with the same recipe (only train budget keys may change)"
                )


class _Signals:
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps, so the checkpoint is consistent."""

    def __init__(self):
        self.received: int | None = None

    def __enter__(self):
        self.old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


def train_lm(
    recipe: Recipe,
    output: Path,
    run_dir: Path,
    resume: dict | None = None,
    console: Console | None = None,
) -> dict:
    """Train a language model per `recipe`; returns final metrics. The best model goes to `output`."""
    console = console or Console(stderr=True)
    t = recipe.train
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    random.seed(t.seed)

    vocab = vocab_from_dict(resume["vocab"]) if resume else None
    data: LMData = prepare_data(recipe, vocab, splits=("train", "valid"))
    if resume and data.vocab.to_dict() != resume["vocab"]:
        raise UserError("the corpus gives a different vocabulary than the --resume checkpoint: resume on the same data")
    train = batchify(data.ids["train"], t.batch_size, "training split")
    if train.size(1) <= t.bptt:
        raise UserError(
            f"the training split has {train.size(1)} tokens per stream, fewer than one BPTT window of {t.bptt}: "
            "use more text or lower train.bptt / train.batch_size"
        )
    per_epoch = num_windows(train, t.bptt)
    total = t.max_steps or max(1, round(t.epochs * per_epoch))
    eval_every = t.eval_every or per_epoch

    model = RNNLM(len(data.vocab), recipe.model)
    optimizer = build_optimizer(model.parameters(), t)
    schedule = LRSchedule(t, per_epoch, total)
    prog = Counters()
    state = model.init_state(t.batch_size)
    if resume:
        ts = resume["train_state"]
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(ts["optimizer"])
        schedule.load_state_dict(ts["schedule"])
        prog = Counters(ts["step"], ts["tokens"], ts["elapsed"], ts["best_valid"])
        state = tuple(ts["hidden"]) if isinstance(ts["hidden"], list) else ts["hidden"]
        _set_rng_state(ts["rng"])

    checkpoint.check_writable(output)
    checkpoint.check_writable(run_dir / "last.pt")
    (run_dir / "recipe.toml").write_text(dump_toml(recipe))
    last_path = run_dir / "last.pt"
    csv_path = run_dir / "metrics.csv"
    if resume and csv_path.exists():  # drop rows logged after the checkpoint we resume from
        rows = csv_path.read_text().splitlines(keepends=True)
        csv_path.write_text("".join(rows[:1] + [r for r in rows[1:] if int(r.split(",")[0]) <= prog.step]))
    new_csv = not csv_path.exists()
    csv_file = open(csv_path, "a", newline="")
    writer = csv.DictWriter(csv_file, CSV_FIELDS)
    if new_csv:
        writer.writeheader()

    def payload(with_state: bool) -> dict:
        out = {"kind": "lm", "recipe": to_dict(recipe), "vocab": data.vocab.to_dict(), "model": model.state_dict()}
        if with_state:
            out["train_state"] = {
                "step": prog.step, "tokens": prog.tokens, "elapsed": prog.elapsed, "best_valid": prog.best_valid,
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "rng": _rng_state(),
                "hidden": list(state) if isinstance(state, tuple) else state, "run_dir": str(run_dir),
            }
        return out

    console.print(f"[bold]{recipe.name}[/]: {sum(p.numel() for p in model.parameters()):,} parameters, "
                  f"vocab {len(data.vocab)}, {data.ids['train'].numel():,} training tokens, "
                  f"{per_epoch} windows/epoch, {total} steps; run dir {run_dir}")
    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
               TimeRemainingColumn()]
    model.train()
    valid_loss = math.nan
    window_loss, window_tokens, window_count = 0.0, 0, 0
    started = time.perf_counter() - prog.elapsed
    log_start, log_tokens = time.perf_counter(), 0
    with _Signals() as signals, Progress(*columns, console=console) as bar:
        task = bar.add_task("train", total=total, completed=prog.step, loss=math.nan, tps=0.0)
        while prog.step < total:
            index = prog.step % per_epoch
            if index == 0:
                state = model.init_state(t.batch_size)
            set_lr(optimizer, schedule.lr(prog.step))
            x, y = window(train, index, t.bptt)
            loss, state = train_step(model, optimizer, x, y, state, t.clip, t.loss_norm)
            if not math.isfinite(loss):
                csv_file.close()
                raise UserError(
                    f"loss became {loss} at step {prog.step + 1}; the last good checkpoint is kept: "
                    "lower train.lr or train.clip and resume"
                )
            prog.step += 1
            prog.tokens += y.numel()
            prog.elapsed = time.perf_counter() - started
            window_loss, window_count, log_tokens = window_loss + loss, window_count + 1, log_tokens + y.numel()
            if prog.step % t.log_every == 0 or prog.step == total:
                tps = log_tokens / max(1e-9, time.perf_counter() - log_start)
                bar.update(task, completed=prog.step, loss=window_loss / window_count, tps=tps)
                writer.writerow({"step": prog.step, "epoch": round(prog.step / per_epoch, 4), "tokens": prog.tokens,
                                 "seconds": round(prog.elapsed, 2), "lr": optimizer.param_groups[0]["lr"],
                                 "train_loss": round(window_loss / window_count, 5), "tokens_per_s": round(tps, 1)})
                csv_file.flush()
                window_loss, window_count, log_tokens, log_start = 0.0, 0, 0, time.perf_counter()
            out_of_time = t.max_minutes > 0 and prog.elapsed >= t.max_minutes * 60
            if prog.step % eval_every == 0 or prog.step == total or out_of_time:
                valid_loss = evaluate(model, data.ids["valid"], t.eval_batch_size, t.bptt)
                schedule.on_validation(valid_loss)
                writer.writerow({"step": prog.step, "epoch": round(prog.step / per_epoch, 4), "tokens": prog.tokens,
                                 "seconds": round(prog.elapsed, 2), "lr": optimizer.param_groups[0]["lr"],
                                 "valid_loss": round(valid_loss, 5), "valid_ppl": round(math.exp(min(valid_loss, 50)), 3)})
                csv_file.flush()
                console.print(f"step {prog.step}: valid loss {valid_loss:.4f} (ppl {math.exp(min(valid_loss, 50)):.2f})")
                if valid_loss < prog.best_valid:
                    prog.best_valid = valid_loss
                    checkpoint.save(output, payload(with_state=True))
                checkpoint.save(last_path, payload(with_state=True))
                started = time.perf_counter() - prog.elapsed  # evaluation time is not training time
            if signals.received is not None:
                checkpoint.save(last_path, payload(with_state=True))
                csv_file.close()
                raise Interrupted(signals.received, last_path)
            if out_of_time:
                console.print(f"time budget of {t.max_minutes} minutes spent at step {prog.step}")
                break
    csv_file.close()
    metrics = {"steps": prog.step, "tokens": prog.tokens, "train_seconds": round(prog.elapsed, 1),
               "tokens_per_s": round(prog.tokens / max(prog.elapsed, 1e-9), 1)}
    metrics.update(metrics_from_loss(valid_loss, recipe.data.level, "valid"))
    metrics["best_valid_loss"] = round(prog.best_valid, 5)
    return {"metrics": metrics, "data": data.sha256}
