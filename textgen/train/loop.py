"""The training loop, shared by every task: update, clip, LR schedule, validate, checkpoint, progress, resume.

A task (language model, seq2seq) supplies the loss for step s and its own validation; the loop
knows nothing else about it. Resume restores everything an uninterrupted run would still have
in memory — weights, optimizer, schedule, RNG states, data position and the task's carried state
(an LM's hidden state) — so the two end identically.
"""

from __future__ import annotations

import csv
import math
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from textgen import device
from textgen.config import Recipe, differences, dump_toml, to_dict
from textgen.console import stderr_console
from textgen.errors import Interrupted, UserError, out_of_memory
from textgen.objectives.base import Loss
from textgen.paths import output_file
from textgen.precision import autocast, check_precision, grad_scaler
from textgen.tasks.base import Task
from textgen.train import checkpoint, distributed
from textgen.train.distributed import Dist
from textgen.train.lr_schedule import LRSchedule, build_optimizer, load_optimizer_state, set_lr

# keys that may differ between a checkpoint's recipe and the one given with --resume
BUDGET_KEYS = {
    "epochs",
    "max_steps",
    "max_minutes",
    "eval_every",
    "log_every",
    "threads",
    "tensorboard",
    "precision",
    "keep_checkpoints",
}


class _StepModule(torch.nn.Module):
    """The task's trainable modules behind one forward(step) -> Loss: the unit DDP wraps."""

    def __init__(self, task: Task):
        super().__init__()
        self.parts = torch.nn.ModuleList(task.trainable_modules())
        self._loss = task.loss

    def forward(self, step: int) -> Loss:
        return self._loss(step)


class _NoLog:
    """metrics.csv stand-in on ranks other than 0."""

    def write(self, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Counters:
    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0  # seconds spent in updates (tokens/s is measured on this)
    best: float = math.nan
    wall: float = 0.0  # wall-clock seconds, validation and checkpointing included (train.max_minutes)


def _to_host(obj):
    """Tensors in nested dicts/lists moved to the CPU: per-rank state travels between processes that may
    not see each other's GPUs, and checkpoints must load anywhere."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(v) for v in obj)
    return obj


def _rng_state(on: torch.device) -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), **device.rng_state(on)}


def _set_rng_state(state: dict, on: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    device.set_rng_state(state, on)


def check_resume_recipe(saved: Recipe, given: Recipe) -> None:
    for section, key, value, ours in differences(saved, given, ("data", "model", "train", "objective")):
        if section == "train" and key in BUDGET_KEYS:  # decode settings and budgets may change freely
            continue
        raise UserError(
            f"--resume checkpoint was trained with {section}.{key}={value!r}, the recipe says {ours!r}: "
            "resume with the same recipe (only train budget keys may change)"
        )


def check_resume_data(saved: dict[str, str], given: dict[str, str]) -> None:
    """A resumed run must read the files it was trained on: an edited corpus would silently change the data
    order and the splits (checkpoints without recorded hashes are not checked)."""
    for name, sha in saved.items():
        if name in given and given[name] != sha:
            raise UserError(
                f"--resume: the corpus file '{name}' changed since this run was trained (sha256 {sha[:12]}… is now "
                f"{given[name][:12]}…): resume with the same data, or start a new run"
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


class _MetricsLog:
    """metrics.csv in the run dir; on resume, rows logged after the checkpoint are dropped and the file's own
    header is kept (a run started by another textgen version may have other columns)."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None, tensorboard: bool = False):
        self.board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("train.tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.board = SummaryWriter(str(path.parent / "tensorboard"), purge_step=resume_step)
        if resume_step is None:
            path.unlink(missing_ok=True)  # a new run (train --overwrite in a used run dir) starts its own log
        elif path.exists():
            rows = path.read_text().splitlines(keepends=True)
            path.write_text("".join(rows[:1] + [r for r in rows[1:] if int(r.split(",")[0]) <= resume_step]))
        new = not path.exists()
        if not new:
            with open(path, newline="") as f:
                columns = next(csv.reader(f), None) or columns
        self.file = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.file, columns, extrasaction="ignore")
        if new:
            self.writer.writeheader()

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()
        if self.board is not None:
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.board.add_scalar(key, value, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.board is not None:
            self.board.close()


def _mean_logs(dist: Dist, logs: dict[str, list[float]], columns: list[str]) -> dict[str, float]:
    """Per-step objective logs averaged over the interval and, under torchrun, over all ranks' steps.

    One collective of fixed layout (sum and count per column), so a rank that logged nothing for a
    column (no sampled rows in its batches) still takes part and the means are global like train_loss."""
    values = []
    for key in columns:
        values += [sum(logs.get(key, [])), len(logs.get(key, []))]
    totals = distributed.all_sum(dist, values) if columns else []
    return {key: round(totals[2 * i] / totals[2 * i + 1], 5) for i, key in enumerate(columns) if totals[2 * i + 1]}


def _improved(value: float, best: float, higher: bool) -> bool:
    return math.isnan(best) or (value > best if higher else value < best)


def _restore(task: Task, ts: dict, recipe: Recipe, dist: Dist) -> int:
    """Per-rank RNG and task state from a checkpoint; returns the step to continue from.

    At a different world size the same number of batches counts as consumed (step rescaled), RNG
    streams are re-seeded, and the task keeps what does not depend on the shards (an objective's
    baseline regressor) but not what does (an LM's carried hidden state)."""
    world = ts.get("world", 1)
    if world == dist.world:
        mine = ts["ranks"][dist.rank] if dist.active else {"rng": ts["rng"], "task": ts["task"]}
        task.load_state_dict(mine["task"])
        _set_rng_state(mine["rng"], dist.device)
        return ts["step"]
    task.load_state_dict(ts["task"], resharded=True)
    step = ts["step"] * world // dist.world
    torch.manual_seed(recipe.train.seed + 1000 * dist.rank + step)
    random.seed(recipe.train.seed + 1000 * dist.rank + step)
    return step


def train(
    task: Task,
    recipe: Recipe,
    output: Path,
    run_dir: Path,
    resume: dict | None = None,
    console: Console | None = None,
    dist: Dist = Dist(),
) -> dict:
    """Run the loop to the recipe's budget; the best model (by the task's metric) goes to `output`.

    Under torchrun every rank runs this loop on its own shard of batches; gradients are averaged by
    DDP with the loss normalised by the tokens of all ranks, so N ranks of batch B take the same
    step as one process with batch N*B. Only rank 0 validates, logs and writes files."""
    return _Run(task, recipe, output, run_dir, resume, console or stderr_console(quiet=not dist.main), dist).loop()


class _Run:
    """One `train` call: what the loop carries from step to step, and its phases (set up or resume, update,
    log an interval, validate and save, stop)."""

    def __init__(self, task: Task, recipe: Recipe, output: Path, run_dir: Path, resume, console: Console, dist: Dist):
        self.task, self.recipe, self.output, self.run_dir = task, recipe, output, run_dir
        self.console, self.dist = console, dist
        t = self.t = recipe.train
        self.model = task.model
        self.per_epoch = task.steps_per_epoch
        self.total = t.max_steps or max(1, round(t.epochs * self.per_epoch))
        self.eval_every = t.eval_every or self.per_epoch
        self.step_module = _StepModule(task)
        self.optimizer = build_optimizer(task.param_groups(), t)
        self.schedule = LRSchedule(t, self.per_epoch, self.total, higher_is_better=task.higher_is_better)
        check_precision(t.precision, dist.device, self.model)
        self.scaler = grad_scaler(t.precision, dist.device)
        self.prog = self._restored(resume) if resume else Counters()
        self.start_step = resume["train_state"].get("start_step", 0) if resume else task.start_step
        in_model = {id(p) for p in self.model.parameters()}
        outside = any(id(p) not in in_model for p in self.step_module.parameters())  # e.g. MIXER's baseline regressor
        self.runner = distributed.wrap(dist, self.step_module, may_skip_parameters=outside)
        self.last_path = run_dir / "last.pt"
        self.log = self._open_log(resumed=resume is not None)
        self.saved_step = self.prog.step if resume and self.last_path.is_file() else None  # the step last.pt holds
        self.valid: dict[str, float] = {}
        self.stopped = None  # why the run ended before `total` updates
        self.run_loss, self.run_tokens, self.log_tokens, self.run_logs = 0.0, 0, 0, {}

    def _restored(self, resume: dict) -> Counters:
        """Weights, optimizer, schedule, scaler, RNG and task state from a checkpoint; its counters."""
        check_resume_data(resume.get("data", {}).get("sha256", {}), self.task.sha256)
        ts = resume["train_state"]
        self.model.load_state_dict(resume["model"])
        load_optimizer_state(self.optimizer, ts["optimizer"])
        self.schedule.load_state_dict(ts["schedule"])
        if self.scaler.is_enabled() and ts.get("scaler"):
            self.scaler.load_state_dict(ts["scaler"])
        step = _restore(self.task, ts, self.recipe, self.dist)
        return Counters(step, ts["tokens"], ts["elapsed"], ts["best"], ts.get("wall", ts["elapsed"]))

    def _open_log(self, resumed: bool):
        """metrics.csv and recipe.toml in the run dir (rank 0), the checkpoint paths checked before training."""
        if not self.dist.main:
            return _NoLog()
        columns = ["step", "epoch", "tokens", "seconds", "lr", "train_loss", *self.task.valid_columns]
        # global_step = step + start_step: a fine-tune's curve continues its parent's (textgen plot)
        columns += [*self.task.train_log_columns, "tokens_per_s", "global_step"]
        output_file(self.output, "checkpoint", "model.pt")  # fail before training, not at the first save
        output_file(self.last_path, "checkpoint", "last.pt")
        (self.run_dir / "recipe.toml").write_text(dump_toml(self.recipe))
        resume_step = self.prog.step if resumed else None
        checkpoint.drop_kept_after(self.run_dir, resume_step or 0)  # as metrics.csv drops the rows after it
        return _MetricsLog(self.run_dir / "metrics.csv", columns, resume_step, self.t.tensorboard)

    def _payload(self) -> dict:
        """The checkpoint contents; a collective under torchrun (per-rank RNG and task state)."""
        task, prog, dist = self.task, self.prog, self.dist
        ranks = distributed.gather(dist, _to_host({"rng": _rng_state(dist.device), "task": task.state_dict()}))
        return {
            "kind": task.kind,
            "recipe": to_dict(self.recipe),
            "vocab": task.vocab_dict(),
            "data": {"workdir": str(Path.cwd()), "sha256": task.sha256},  # eval finds and checks the files
            "model": self.model.state_dict(),
            "train_state": {
                "step": prog.step,
                "tokens": prog.tokens,
                "elapsed": prog.elapsed,
                "best": prog.best,
                "wall": prog.wall,
                "start_step": self.start_step,
                "output": str(self.output.resolve()),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": ranks[0]["rng"],
                "task": ranks[0]["task"],
                "run_dir": str(self.run_dir),
                "world": dist.world,
                **({"ranks": ranks} if dist.active else {}),
            },
        }

    def _row(self, **values) -> dict:
        prog = self.prog
        return {
            "step": prog.step,
            "global_step": self.start_step + prog.step,
            "epoch": round(prog.step / self.per_epoch, 4),
            "tokens": prog.tokens,
            "seconds": round(prog.elapsed, 2),
            "lr": self.optimizer.param_groups[0]["lr"],
            **values,
        }

    def _announce(self) -> None:
        task, console = self.task, self.console
        console.print(
            f"[bold]{self.recipe.name}[/]: {sum(p.numel() for p in self.model.parameters()):,} parameters, "
            f"{task.describe()}, {self.per_epoch} steps/epoch, {self.total} steps; run dir {self.run_dir}"
        )
        for note in task.notes:
            console.print(note, markup=False)  # paths may hold [brackets]
        if self.t.lr_schedule == "plateau":
            console.print(
                f"lr plateau follows {task.best_metric} ({'higher' if task.higher_is_better else 'lower'} "
                "is better), the metric that picks the best checkpoint"
            )

    def _resume_hint(self) -> str:
        if self.saved_step is None:
            return "no checkpoint was saved yet"
        return f"resume with textgen train --resume {self.last_path} (step {self.saved_step})"

    def _update(self):
        """One optimizer update on every rank; returns its output and the loss sum and tokens of all ranks."""
        t, prog, dist = self.t, self.prog, self.dist
        set_lr(self.optimizer, self.schedule.lr(prog.step))
        with autocast(t.precision, dist.device):
            out = self.runner(prog.step)
        loss_sum, ntokens, nsentences = distributed.all_sum(dist, [out.loss_sum.item(), out.ntokens, out.nsentences])
        ntokens = int(ntokens)
        norm = ntokens if t.loss_norm == "tokens" else nsentences
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss_sum * dist.world / norm).backward()  # DDP averages over ranks: sum / all tokens
        if t.clip > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip)
        self.scaler.step(self.optimizer)  # with fp16, a step whose gradients overflowed is skipped
        self.scaler.update()
        if not math.isfinite(loss_sum):
            raise UserError(
                f"loss became {loss_sum} at step {prog.step + 1}: lower train.lr or train.clip; " + self._resume_hint()
            )
        prog.step += 1
        prog.tokens += ntokens
        prog.elapsed = time.perf_counter() - self.started
        prog.wall = time.perf_counter() - self.wall_start
        return out, loss_sum, ntokens

    def _log_interval(self, out, loss_sum: float, ntokens: int, bar: Progress, ui) -> None:
        """Add a step to the interval's sums; every train.log_every steps, a metrics.csv row and the bar's stats."""
        prog = self.prog
        self.run_loss += loss_sum
        self.run_tokens += ntokens
        self.log_tokens += ntokens
        for key, value in (out.logs or {}).items():
            self.run_logs.setdefault(key, []).append(value)
        if prog.step % self.t.log_every == 0 or prog.step == self.total:
            tps = self.log_tokens / max(1e-9, prog.elapsed - self.log_elapsed)
            loss = self.run_loss / self.run_tokens
            bar.update(ui, completed=prog.step, stats=f"loss {loss:.3f} {tps:,.0f} tok/s")
            means = _mean_logs(self.dist, self.run_logs, self.task.train_log_columns)
            self.log.write(self._row(train_loss=round(loss, 5), tokens_per_s=round(tps, 1), **means))
            self.run_loss, self.run_tokens, self.log_tokens, self.run_logs = 0.0, 0, 0, {}
            self.log_elapsed = prog.elapsed

    def _validate(self) -> None:
        """Validate (rank 0), step the plateau schedule, log, and save last.pt and, when better, the best model."""
        task, prog, dist = self.task, self.prog, self.dist
        self.valid = valid = distributed.from_main(dist, task.validate() if dist.main else None)
        self.model.train()
        distributed.check_in_sync(dist, self.step_module)
        self.schedule.on_validation(valid[task.best_metric])
        self.log.write(self._row(**valid))
        self.console.print(f"step {prog.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in valid.items()))
        improved = _improved(valid[task.best_metric], prog.best, task.higher_is_better)
        if improved:
            prog.best = valid[task.best_metric]
        state = self._payload()
        if dist.main:
            if improved:
                checkpoint.save(self.output, state)
            checkpoint.save(self.last_path, state)
            if self.t.keep_checkpoints:
                checkpoint.keep(self.run_dir, prog.step, state, self.t.keep_checkpoints)
        self.saved_step = prog.step
        self.started = time.perf_counter() - prog.elapsed  # validation time is not update time (tok/s)
        prog.wall = time.perf_counter() - self.wall_start

    def _steps(self, signals: _Signals, bar: Progress) -> None:
        """Update until the budget, a signal (last.pt saved, Interrupted raised) or train.max_minutes."""
        prog, t = self.prog, self.t
        ui = bar.add_task("train", total=self.total, completed=prog.step, stats="")
        while prog.step < self.total:
            self._log_interval(*self._update(), bar, ui)
            interrupted, out_of_time = distributed.any_rank(
                self.dist, [signals.received is not None, t.max_minutes > 0 and prog.wall >= t.max_minutes * 60]
            )
            if prog.step % self.eval_every == 0 or prog.step == self.total or out_of_time:
                self._validate()
            if interrupted:
                state = self._payload()
                if self.dist.main:
                    checkpoint.save(self.last_path, state)
                raise Interrupted(signals.received or signal.SIGTERM, self.last_path)
            if out_of_time:
                if prog.step < self.total:
                    self.stopped = (
                        f"stopped on its time budget (train.max_minutes = {t.max_minutes:g}) "
                        f"after {prog.step} of {self.total} updates"
                    )
                    self.console.print(self.stopped, markup=False)
                bar.update(ui, completed=prog.step)
                break

    def loop(self) -> dict:
        prog = self.prog
        self._announce()
        self.model.train()
        self.started = time.perf_counter() - prog.elapsed
        self.wall_start = time.perf_counter() - prog.wall
        self.log_elapsed = prog.elapsed  # update seconds at the last log row: tok/s = its tokens / the time since
        if prog.step >= self.total:
            self.stopped = f"no steps remained: the checkpoint is at step {prog.step} of {self.total}"
            self.console.print(
                f"{self.stopped}; raise train.epochs or train.max_steps (--set) to train on", markup=False
            )
        try:
            with (
                _Signals() as signals,
                Progress(*_bar_columns(), console=self.console, disable=self.stopped is not None) as bar,
            ):
                self._steps(signals, bar)
        except Exception as exc:
            if out_of_memory(exc):
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(
                    f"out of memory after step {prog.step} ({first_line}): lower train.max_tokens or data.max_len "
                    f"(seq2seq) / train.batch_size or train.bptt (lm); {self._resume_hint()}"
                ) from None
            if not isinstance(exc, (UserError, Interrupted)):
                self.console.print(f"training failed after step {prog.step}; {self._resume_hint()}", markup=False)
            raise
        finally:
            self.log.close()
        metrics = {
            "steps": prog.step,
            "tokens": prog.tokens,
            "train_seconds": round(prog.elapsed, 1),
            "tokens_per_s": round(prog.tokens / max(prog.elapsed, 1e-9), 1),
            **self.valid,
            f"best_{self.task.best_metric}": prog.best,
        }
        return {"metrics": metrics, "data": self.task.sha256, "stopped": self.stopped}


def _bar_columns() -> list:
    return [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),  # loss and tok/s of the last logged interval, blank before it
        TimeRemainingColumn(),
    ]


def seed_everything(recipe: Recipe, rank: int = 0) -> None:
    """Seed torch and random; ranks get their own streams (dropout, samples), DDP syncs the weights."""
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    torch.manual_seed(recipe.train.seed + 1000 * rank)
    random.seed(recipe.train.seed + 1000 * rank)
