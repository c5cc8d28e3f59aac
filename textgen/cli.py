"""The `textgen` command line: each command parses its options (declared in cli_options.py), calls one library
function (train.run, evaluate.run, the API, serve.start, data.prepared.prepare) and prints what it returns.

torch is imported inside the commands, so `textgen --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from textgen import cli_options as opt
from textgen.cli_data import data_app
from textgen.errors import UserError, one_line
from textgen.paths import output_file

app = typer.Typer(
    add_completion=True,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Recurrent text generation and sequence-level training.\n\n"
    "Examples:\n\n"
    "  textgen train --recipe shakespeare --set train.max_minutes=5\n\n"
    "  textgen sample shakespeare.pt --prime 'ROMEO:' --temperature 0.8\n\n"
    "  textgen eval shakespeare.pt --split valid --json",
)
app.add_typer(data_app, name="data")


@app.command()
def train(
    recipe: Optional[str] = opt.TRAIN_RECIPE,
    overrides: list[str] = opt.SET,
    output: Optional[str] = opt.TRAIN_OUTPUT,
    overwrite: bool = opt.TRAIN_OVERWRITE,
    resume: Optional[Path] = opt.TRAIN_RESUME,
    run_dir: Optional[Path] = opt.TRAIN_RUN_DIR,
    results: Optional[str] = opt.TRAIN_RESULTS,
    json_out: bool = opt.TRAIN_JSON_OUT,
    nproc: int = opt.TRAIN_NPROC,
    device: str = opt.device("train (under torchrun, auto and cuda mean cuda:LOCAL_RANK)"),
    prepared: Optional[Path] = opt.TRAIN_PREPARED,
) -> None:
    """Train a model from a recipe.

    Example: textgen train --recipe ptb-small --results results/ptb-small.json

    Data-parallel: textgen train --recipe mixer --nproc 2  (or: torchrun --nproc-per-node 2 -m textgen train ...)
    """
    if nproc > 1:
        from textgen.train.distributed import launch

        sys.exit(launch(nproc, sys.argv[1:], device))
    from textgen.train.run import run, summary_line

    result = run(recipe, overrides, output, run_dir, resume, overwrite, results, device, prepared)
    if result is not None:  # None on ranks other than 0
        typer.echo(json.dumps(result, indent=2) if json_out else summary_line(result))


@app.command()
def sample(
    ckpt: Path = opt.SAMPLE_CKPT,
    prime: str = opt.SAMPLE_PRIME,
    length: int = opt.SAMPLE_LENGTH,
    temperature: float = opt.SAMPLE_TEMPERATURE,
    top_k: int = opt.SAMPLE_TOP_K,
    top_p: float = opt.SAMPLE_TOP_P,
    seed: Optional[int] = opt.SAMPLE_SEED,
    interactive: bool = opt.SAMPLE_INTERACTIVE,
    device: str = opt.device("sample"),
) -> None:
    """Generate text one token at a time, streamed to stdout.

    Example: textgen sample shakespeare.pt --prime 'ROMEO:' --temperature 0.8 --seed 1
    """
    from textgen.api import load
    from textgen.console import prompt_lines, write_stream

    lm = load(ckpt, device, kind="lm")

    def stream(text: str) -> None:
        write_stream(text + (lm.separator if text else ""), lm.stream(text, length, temperature, top_k, top_p, seed))

    if not interactive:
        stream(prime)
        return
    for line in prompt_lines("prime> "):
        try:
            stream(line)
        except UserError as exc:  # a bad prime should not end the session
            typer.echo(f"error: {exc}", err=True)


@app.command("eval")
def eval_(
    ctx: typer.Context,
    ckpt: Optional[list[Path]] = opt.EVAL_CKPT,
    data: Optional[str] = opt.EVAL_DATA,
    split: str = opt.EVAL_SPLIT,
    metric: list[str] = opt.EVAL_METRIC,
    hyp: list[Path] = opt.EVAL_HYP,
    ref: list[Path] = opt.EVAL_REF,
    paired_bootstrap: int = opt.EVAL_PAIRED_BOOTSTRAP,
    paired_ar: int = opt.EVAL_PAIRED_AR,
    beam: Optional[int] = opt.EVAL_BEAM,
    mbr: Optional[int] = opt.EVAL_MBR,
    mbr_sampling: str = opt.MBR_SAMPLING,
    mbr_utility: str = opt.MBR_UTILITY,
    mbr_epsilon: float = opt.MBR_EPSILON,
    mbr_top_p: float = opt.MBR_TOP_P,
    mbr_beam: int = opt.MBR_BEAM,
    seed: Optional[int] = opt.EVAL_SEED,
    batch_size: Optional[int] = opt.EVAL_BATCH_SIZE,
    hyp_out: Optional[str] = opt.EVAL_HYP_OUT,
    rerank: Optional[Path] = opt.RERANK,
    precision: Optional[str] = opt.EVAL_PRECISION,
    device: str = opt.device("run the model"),
    json_out: bool = opt.EVAL_JSON_OUT,
    results: Optional[str] = opt.EVAL_RESULTS,
) -> None:
    """Score a checkpoint on a split (LM: loss, perplexity, bits/char; seq2seq: decode + BLEU/ROUGE) or score files.

    Examples:

      textgen eval ptb-small.pt --split test --batch-size 1 --json

      textgen eval mt.pt --split test --beam 5 --metric bleu4 --metric bleu4-lc

      textgen eval --metric bleu4 --hyp hyps.txt --ref refs.txt

      textgen eval --metric bleu4 --hyp base.txt --hyp new.txt --ref refs.txt --paired-bootstrap 1000

      textgen eval mt.pt --split test --mbr 32 --mbr-utility chrf
    """
    from textgen import evaluate

    result, comparisons = evaluate.run(**{k: v for k, v in ctx.params.items() if k != "json_out"})
    if "hypotheses" in result:
        typer.echo(f"hypotheses: {result['hypotheses']}", err=True)
    typer.echo(json.dumps(result, indent=2) if json_out else "\n".join(evaluate.report(result, comparisons)))


@app.command()
def decode(
    ctx: typer.Context,
    ckpt: list[Path] = opt.DECODE_CKPT,
    input: Optional[Path] = opt.DECODE_INPUT,
    beam: Optional[int] = opt.DECODE_BEAM,
    nbest: int = opt.DECODE_NBEST,
    lenpen: Optional[float] = opt.DECODE_LENPEN,
    max_len_a: Optional[float] = opt.DECODE_MAX_LEN_A,
    max_len_b: Optional[int] = opt.DECODE_MAX_LEN_B,
    no_repeat_ngram: Optional[int] = opt.DECODE_NO_REPEAT_NGRAM,
    sample: bool = opt.DECODE_SAMPLE,
    temperature: Optional[float] = opt.DECODE_TEMPERATURE,
    seed: Optional[int] = opt.DECODE_SEED,
    mbr: Optional[int] = opt.DECODE_MBR,
    mbr_sampling: str = opt.MBR_SAMPLING,
    mbr_utility: str = opt.MBR_UTILITY,
    mbr_epsilon: float = opt.MBR_EPSILON,
    mbr_top_p: float = opt.MBR_TOP_P,
    mbr_beam: int = opt.MBR_BEAM,
    batch_size: Optional[int] = opt.DECODE_BATCH_SIZE,
    rerank: Optional[Path] = opt.RERANK,
    interactive: bool = opt.DECODE_INTERACTIVE,
    precision: Optional[str] = opt.DECODE_PRECISION,
    device: str = opt.device("decode"),
) -> None:
    """Translate / summarize: read sources, write one hypothesis per line (n-best: index, score, text).

    Example: echo 'Ein Mann fährt Fahrrad.' | textgen decode mt.pt --beam 5

    MBR: textgen decode mt.pt -i test.de --mbr 32 --mbr-sampling epsilon --mbr-utility chrf --seed 1

    Ensemble: textgen decode a.pt b.pt c.pt -i test.de --beam 5
    """
    from textgen.api import load
    from textgen.console import prompt_lines, stdin_lines, write_outputs
    from textgen.data.parallel import read_lines

    mt = load(ckpt, device, kind="seq2seq")
    # every other option is a decode setting, by the name Translator.translate takes (None: the recipe's)
    settings = {k: v for k, v in ctx.params.items() if k not in ("ckpt", "input", "interactive", "device")}
    mt.translate([], **settings)  # bad settings fail here, before any input is read

    def emit(lines: list[str], first: int = 0) -> None:
        write_outputs(mt.translate(lines, progress=not interactive, **settings), nbest, first)

    if interactive:
        for i, line in enumerate(prompt_lines("source> ")):
            if line.strip():
                emit([line], i)
        return
    lines = read_lines(input) if input else stdin_lines()
    if lines:
        emit(lines)


@app.command()
def score(
    ckpt: list[Path] = opt.SCORE_CKPT,
    src: Optional[Path] = opt.SCORE_SRC,
    tgt: Optional[Path] = opt.SCORE_TGT,
    text: Optional[Path] = opt.SCORE_TEXT,
    json_out: bool = opt.SCORE_JSON_OUT,
    device: str = opt.device("run the model"),
) -> None:
    """Forced decoding: the log-probability the model gives to given outputs, one line out per input line.

    Prints total<TAB>tokens<TAB>mean (natural log; tokens include EOS for seq2seq).

    Examples:

      textgen score mt.pt --src test.de --tgt hyps.en

      textgen score shakespeare.pt --text lines.txt --json
    """
    from textgen.api import load, score_files

    for item in score_files(load(ckpt, device), src, tgt, text):
        typer.echo(json.dumps(item.to_dict(), ensure_ascii=False) if json_out else str(item))


@app.command()
def rerank(
    ckpt: list[Path] = opt.RERANK_CKPT,
    output: str = opt.RERANK_OUTPUT,
    reverse: Optional[Path] = opt.RERANK_REVERSE,
    lm: Optional[Path] = opt.RERANK_LM,
    nbest: int = opt.RERANK_NBEST,
    metric: str = opt.RERANK_METRIC,
    data: Optional[str] = opt.EVAL_DATA,
    batch_size: Optional[int] = opt.RERANK_BATCH_SIZE,
    device: str = opt.device("run the models"),
) -> None:
    """Tune n-best reranking weights on the validation split, for decode and eval to take (--rerank FILE).

    The features: the forward model's score, a reverse model's, a target language model's, and length.

    Example: textgen rerank mt.pt --reverse en-de.pt --lm en-lm.pt --nbest 8 -o rerank.json

             textgen eval mt.pt --split test --rerank rerank.json
    """
    from textgen.rerank import tune_on_split

    done = tune_on_split(ckpt, output, reverse, lm, nbest, metric, data, batch_size, device)
    typer.echo(f"wrote {output}: weights {json.dumps(done['weights'])}")
    typer.echo(", ".join(f"{k} {v}" for k, v in done.items() if k.startswith("valid_")))


@app.command()
def average(
    inputs: list[Path] = opt.AVERAGE_INPUTS,
    output: str = opt.AVERAGE_OUTPUT,
    last: int = opt.AVERAGE_LAST,
) -> None:
    """Average the weights of a run's last checkpoints into one model (decode, eval and serve it as any other).

    Example: textgen train --recipe translate-multi30k --set train.keep_checkpoints=5 --run-dir runs/mt

             textgen average runs/mt --last 5 -o checkpoints/mt-avg.pt
    """
    from textgen.train.average import average_files

    files = average_files(inputs, output, last)
    typer.echo(f"wrote {output}: the mean of {len(files)} checkpoints, {files[0]} to {files[-1]}")


@app.command()
def serve(
    ctx: typer.Context,
    ckpt: list[Path] = opt.SERVE_CKPT,
    host: str = opt.SERVE_HOST,
    port: int = opt.SERVE_PORT,
    max_batch: int = opt.SERVE_MAX_BATCH,
    window_ms: float = opt.SERVE_WINDOW_MS,
    max_sources: int = opt.SERVE_MAX_SOURCES,
    max_input_chars: int = opt.SERVE_MAX_INPUT_CHARS,
    max_length: int = opt.SERVE_MAX_LENGTH,
    timeout_s: float = opt.SERVE_TIMEOUT_S,
    max_work: int = opt.SERVE_MAX_WORK,
    max_queued: int = opt.SERVE_MAX_QUEUED,
    max_connections: int = opt.SERVE_MAX_CONNECTIONS,
    allow_host: list[str] = opt.SERVE_ALLOW_HOST,
    device: str = opt.device("run the model"),
) -> None:
    """Serve a checkpoint over HTTP: POST /translate, /sample, /score (JSON), GET /health, a try-it page at /.

    Concurrent /translate requests with the same settings are decoded together, in one worker thread.

    Example: textgen serve checkpoints/translate-multi30k.pt --port 8080
    """
    from textgen.serve import start

    named = ("ckpt", "host", "port", "device", "allow_host")  # the other options are the server's Limits
    start(ckpt, host, port, device, allow_host, **{k: v for k, v in ctx.params.items() if k not in named})


@app.command()
def plot(
    run_dirs: list[Path] = opt.PLOT_RUN_DIRS,
    output: str = opt.PLOT_OUTPUT,
    label: list[str] = opt.PLOT_LABEL,
) -> None:
    """Draw learning curves (train/valid loss, validation metrics) of one or more runs into a PNG.

    Example: textgen plot runs/xent-* runs/mixer-* --label xent --label mixer -o compare.png
    """
    from textgen.plot import plot_runs

    output = output_file(output, "-o", "curves.png")
    panels = plot_runs(run_dirs, output, label)
    typer.echo(f"wrote {output} ({', '.join(panels)})")


@app.command()
def recipes() -> None:
    """List the recipes with their one-line descriptions.

    Example: textgen recipes
    """
    from textgen.config import list_recipe_files, read_toml

    for path in list_recipe_files():
        typer.echo(f"{path.stem:<20} {read_toml(path).get('description', '')}")


def main() -> None:
    quiet = os.environ.get("RANK", "0") != "0"  # under torchrun, rank 0 speaks for all
    try:
        app()
    except BaseException as exc:  # one line for the user's problems (errors.one_line), a traceback for bugs
        said = one_line(exc)
        if said is None:
            raise
        line, code, every_rank = said
        if not quiet or every_rank:
            typer.echo(line, err=True)
        sys.exit(code)
