"""`textgen train` as a library call: resolve the recipe (fresh or resumed), check every output before any
work, build the task on this rank and run the loop; what the CLI prints and the results file are returned."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from textgen.config import (
    Recipe,
    apply_overrides,
    from_dict,
    known_keys_only,
    load_recipe,
    parse_override,
    recipe_from_checkpoint,
)
from textgen.errors import UserError
from textgen.paths import output_file


def resolve_recipe(recipe: str | None, overrides: list[str], saved: dict | None, prepared: Path | None) -> Recipe:
    """The recipe a run trains with: `recipe` with `overrides`, or a resumed run's own (its --set overrides too)
    with new overrides on top; with a prepared folder and no data.corpus override, the folder's corpus."""
    from textgen.train.loop import check_resume_recipe

    if recipe is None and saved is None:
        raise UserError("give --recipe NAME (see `textgen recipes`) or --resume CHECKPOINT")
    if saved is None:
        cfg = load_recipe(recipe, overrides)
    else:
        if recipe is not None:
            check_resume_recipe(recipe_from_checkpoint(saved), load_recipe(recipe, overrides))
        cfg = from_dict(apply_overrides(known_keys_only(saved["recipe"]), overrides))
        check_resume_recipe(recipe_from_checkpoint(saved), cfg)
    if prepared is not None and not any(parse_override(o)[0] == ["data", "corpus"] for o in overrides):
        from textgen.data.prepared import read_manifest

        cfg = replace(cfg, data=replace(cfg.data, corpus=read_manifest(prepared)["corpus"]))  # the folder's data
    return cfg


def check_outputs(output: str, run_dir: Path, saved: dict | None, overwrite: bool, example: str) -> Path:
    """The best checkpoint's path, checked with the run folder's last.pt before any work starts: a new run
    never replaces a trained checkpoint unless `overwrite`; a resumed run writes its own files again."""
    state = saved["train_state"] if saved else {}

    def own(path: Path, key: str) -> bool:
        return key in state and Path(state[key]).resolve() == path.resolve()

    best = output_file(
        output,
        "-o",
        example,
        overwrite=overwrite or own(Path(output), "output"),
        exists_hint="pass --overwrite to replace it, or continue the run that wrote it: "
        "textgen train --resume RUN_DIR/last.pt",
    )
    last = run_dir / "last.pt"
    output_file(
        last,
        "--run-dir checkpoint",
        "last.pt",
        overwrite=overwrite or own(run_dir, "run_dir"),
        exists_hint=f"it belongs to another run: give a new --run-dir, pass --overwrite to replace it, "
        f"or continue that run: textgen train --resume {last}",
    )
    return best


def run(
    recipe: str | None = None,
    overrides: list[str] = (),
    output: str | None = None,
    run_dir: Path | None = None,
    resume: Path | None = None,
    overwrite: bool = False,
    results: str | None = None,
    device: str = "auto",
    prepared: Path | None = None,
) -> dict | None:
    """Train `recipe` (a name or path; or continue `resume`) into `output` (default ./NAME.pt) with its logs in
    `run_dir` (default runs/NAME-TIME, a resumed run's own). Returns the result (metrics, data sha256, time,
    checkpoint, world size, device, why it stopped early) on rank 0, also written to `results`; None on others."""
    from textgen.results import make_result, write_result
    from textgen.tasks import build_task
    from textgen.train import checkpoint, distributed
    from textgen.train.loop import seed_everything, train

    overrides = list(overrides)
    saved = checkpoint.load(resume) if resume else None
    if saved is not None and "train_state" not in saved:
        raise UserError(f"checkpoint '{resume}' has no training state to resume from")
    cfg = resolve_recipe(recipe, overrides, saved, prepared)
    if output is None:  # a resumed run keeps writing its best checkpoint where the first run did
        output = (saved["train_state"].get("output") if saved else None) or f"{cfg.name}.pt"
    if run_dir is None:
        previous = Path(saved["train_state"]["run_dir"]) if saved else None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = previous if previous and previous.is_dir() else Path("runs") / f"{cfg.name}-{stamp}"
    output = check_outputs(output, run_dir, saved, overwrite, f"{cfg.name}.pt")
    if results:
        results = output_file(results, "--results", f"{cfg.name}.json")
    start = time.perf_counter()
    dist = distributed.from_env(device)
    try:
        seed_everything(cfg, dist.rank)
        task = build_task(cfg, saved, dist, prepared)
        summary = train(task, cfg, output, run_dir, resume=saved, dist=dist)
    finally:
        distributed.shutdown(dist)
    if not dist.main:
        return None
    result = make_result(summary["metrics"], summary["data"], time.perf_counter() - start, checkpoint=str(output))
    result["world_size"] = dist.world
    result["device"] = str(dist.device)
    if summary["stopped"]:
        result["stopped"] = summary["stopped"]
    if results:
        write_result(results, result)
    return result


def summary_line(result: dict) -> str:
    """What `textgen train` prints at the end without --json: the best checkpoint, its metrics, why it stopped."""
    metrics = ", ".join(f"{k} {v}" for k, v in result["metrics"].items())
    stopped = f"; {result['stopped']}" if "stopped" in result else ""
    return f"best checkpoint: {result['checkpoint']}; {metrics}{stopped}"
