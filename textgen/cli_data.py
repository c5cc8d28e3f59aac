"""`textgen data`: list, fetch and prepare corpora (the registry in data/registry.py, prepared folders in
data/prepared.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from textgen import cli_options as opt

data_app = typer.Typer(
    help="List, fetch and prepare corpora.\n\nExamples:\n\n  textgen data get ptb\n\n"
    "  textgen data prepare ptb --recipe ptb-small",
    no_args_is_help=True,
)


@data_app.command("list")
def data_list() -> None:
    """List registered corpora and whether each is fetched already (`textgen data get NAME` fetches one).

    Example: textgen data list
    """
    from textgen.data.registry import fetched, load_registry

    typer.echo(f"{'corpus':<18} {'fetched':<7} description")
    for name, entry in sorted(load_registry().items()):
        typer.echo(f"{name:<18} {'yes' if fetched(entry) else 'no':<7} {entry.description}")


@data_app.command("get")
def data_get(name: str = opt.DATA_GET_NAME) -> None:
    """Fetch a corpus (mirror folder first, else its URL) and verify its sha256.

    Example: TEXTGEN_DATA_MIRROR=/data/mirror textgen data get multi30k
    """
    from textgen.data.registry import fetch

    for file, path in fetch(name).items():
        typer.echo(f"{file}: {path} (sha256 ok)")


@data_app.command("prepare")
def data_prepare(
    corpus: Optional[str] = opt.DATA_PREPARE_CORPUS,
    recipe: str = opt.DATA_PREPARE_RECIPE,
    overrides: list[str] = opt.SET,
    output: Optional[Path] = opt.DATA_PREPARE_OUTPUT,
    device: str = opt.device("run the teachers of data.distill_from"),
) -> None:
    """Tokenize a corpus once into memory-mapped arrays that every later `textgen train` reuses.

    `textgen train` does this by itself the first time (the folder is keyed by the data's sha256 and the
    tokenizer settings); run it ahead of time for a big corpus, or with -o for shared storage and
    `textgen train --prepared FOLDER`. With data.distill_from the teachers decode the training sources first
    (cached, resumable: see docs/DECODING.md).

    Example: textgen data prepare "train.de,train.en;valid.de,valid.en" --recipe translate-multi30k
    """
    from textgen.config import load_recipe
    from textgen.data.prepared import prepare
    from textgen.device import resolve_device
    from textgen.tasks.distill import distilled_targets

    def distill(r):  # the device is resolved only where there are teachers to run
        return distilled_targets(r, resolve_device(device))

    data, notes = prepare(load_recipe(recipe, overrides), corpus, output, distill)
    for note in notes:
        typer.echo(note, err=True)
    m = data.manifest
    typer.echo(f"{data.folder}: {json.dumps(m['splits'])}; prepared in {m['prepare_seconds']} s")
