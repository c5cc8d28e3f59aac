"""The `textgen` command line: builds a config, calls one library function, prints the result.

torch is imported inside the commands, so `textgen --help` stays fast.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from textgen.config import DecodeConfig, MbrConfig
from textgen.errors import Interrupted, RankError, UserError, out_of_memory
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
data_app = typer.Typer(
    help="List, fetch and prepare corpora.\n\nExamples:\n\n  textgen data get ptb\n\n"
    "  textgen data prepare ptb --recipe ptb-small",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


def _flags_show_no_type() -> None:
    """typer (0.29) prints a type beside every option in help panels, `<bool>` for flags too (`--json <bool>`,
    `--help <bool>`), as if they took a value: a flag shows none."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is not None:  # older typer versions print no type for flags
        TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else shown(self, ctx)


_flags_show_no_type()


def _device_option(what: str):
    return typer.Option(
        "auto", "--device", help=f"Where to {what}: auto (a GPU if torch sees one), cpu, cuda, cuda:N, mps."
    )


def _mbr_option(name: str, help: str):
    """An MBR option of `decode` and `eval` (one definition, one help text); None: the recipe's decode.mbr.NAME."""
    default = getattr(MbrConfig, name)
    flag = "--mbr-" + name.replace("_", "-")
    return typer.Option(
        None, flag, help=f"{help} \\[default: the recipe's decode.mbr.{name}, {default}]", show_default=False
    )


MBR_SAMPLING = _mbr_option("sampling", "How --mbr draws candidates: epsilon, ancestral or top_p (at --temperature).")
MBR_UTILITY = _mbr_option("utility", "The utility --mbr maximises: bleu, chrf, rouge1, rouge2, rougeL.")
MBR_EPSILON = _mbr_option("epsilon", "epsilon sampling: drop tokens with p below this.")
MBR_TOP_P = _mbr_option("top_p", "top_p sampling: the nucleus mass.")
MBR_BEAM = _mbr_option("beam", "Add beam search's K best outputs to --mbr's candidates (scored against the samples).")


def _emit_json(obj: dict) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _not_utf8(line: int) -> UserError:
    return UserError(f"standard input line {line} is not UTF-8: convert it with iconv -f ENCODING -t utf-8")


def _stdin_lines() -> list[str]:
    """Every line of standard input as `read_lines` splits a file (at LF, a CR before it and a BOM dropped: one
    output per line, whatever else a line holds), decoded here so that a byte that is not UTF-8 names its line."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text stream without bytes underneath (tests): already decoded
        text = sys.stdin.read()
    else:
        data = raw.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _not_utf8(data.count(b"\n", 0, exc.start) + 1) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _prompt_lines(prompt: str):
    """Lines typed at a prompt (on stderr, so stdout stays clean) until Ctrl-D."""
    for number in itertools.count(1):
        sys.stderr.write(prompt)
        sys.stderr.flush()
        raw = getattr(sys.stdin, "buffer", None)  # bytes, decoded here: the text layer decodes ahead by blocks
        line = sys.stdin.readline() if raw is None else raw.readline()
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_utf8(number) from None
        if not line:
            sys.stderr.write("\n")
            return
        yield line.removesuffix("\n").removesuffix("\r")


def _check_train_outputs(output: str, run_dir: Path, saved: dict | None, overwrite: bool, example: str) -> Path:
    """The best checkpoint's path, checked with the run folder's last.pt before any work starts: a new run
    never replaces a trained checkpoint unless --overwrite; a resumed run writes its own files again."""
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


@app.command()
def train(
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Recipe name (recipes/NAME.toml) or path."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a recipe key: section.key=value."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", metavar="PATH", help="Best checkpoint path \\[default: ./NAME.pt]."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Let a new run replace an existing -o checkpoint and --run-dir's last.pt."
    ),
    resume: Optional[Path] = typer.Option(
        None,
        "--resume",
        help="Continue from a checkpoint (e.g. runs/RUN/last.pt) with the recipe and --set it was started with.",
    ),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where metrics.csv, recipe.toml, last.pt go."),
    results: Optional[str] = typer.Option(None, "--results", metavar="PATH", help="Also write a results JSON here."),
    json_out: bool = typer.Option(False, "--json", help="Print final metrics as JSON."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine (started for you)."),
    device: str = _device_option("train (under torchrun, auto and cuda mean cuda:LOCAL_RANK)"),
    prepared: Optional[Path] = typer.Option(
        None, "--prepared", help="A folder from `textgen data prepare` \\[default: found or made in the cache]."
    ),
) -> None:
    """Train a model from a recipe.

    Example: textgen train --recipe ptb-small --results results/ptb-small.json

    Data-parallel: textgen train --recipe mixer --nproc 2  (or: torchrun --nproc-per-node 2 -m textgen train ...)
    """
    if nproc > 1:
        from textgen.device import resolve_device
        from textgen.distributed import launch

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("--nproc is for a plain run; under torchrun leave it out")
        resolve_device(device, local_rank=nproc - 1)  # here, once: rank N-1 needs cuda:N-1 when on GPUs
        sys.exit(launch(nproc, sys.argv[1:]))
    from textgen import checkpoint, distributed
    from textgen.config import from_dict, load_recipe, parse_override, recipe_from_checkpoint
    from textgen.results import make_result, write_result
    from textgen.tasks import build_task
    from textgen.trainer import check_resume_recipe, seed_everything
    from textgen.trainer import train as run_training

    saved = checkpoint.load(resume) if resume else None
    if recipe is None and saved is None:
        raise UserError("give --recipe NAME (see `textgen recipes`) or --resume CHECKPOINT")
    if saved is not None and "train_state" not in saved:
        raise UserError(f"checkpoint '{resume}' has no training state to resume from")
    if saved is None:
        cfg = load_recipe(recipe, overrides)
    else:  # a resumed run keeps the recipe it was started with (its --set overrides too); new --set go on top
        from textgen.config import apply_overrides, known_keys_only

        if recipe is not None:
            check_resume_recipe(recipe_from_checkpoint(saved), load_recipe(recipe, overrides))
        cfg = from_dict(apply_overrides(known_keys_only(saved["recipe"]), overrides))
        check_resume_recipe(recipe_from_checkpoint(saved), cfg)
    if prepared is not None and not any(parse_override(o)[0] == ["data", "corpus"] for o in overrides):
        from dataclasses import replace

        from textgen.data.prepared import read_manifest

        cfg = replace(cfg, data=replace(cfg.data, corpus=read_manifest(prepared)["corpus"]))  # the folder's data
    if output is None:  # a resumed run keeps writing its best checkpoint where the first run did
        saved_output = saved["train_state"].get("output") if saved else None
        output = saved_output or f"{cfg.name}.pt"
    if run_dir is None:
        previous = Path(saved["train_state"]["run_dir"]) if saved else None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = previous if previous and previous.is_dir() else Path("runs") / f"{cfg.name}-{stamp}"
    output = _check_train_outputs(output, run_dir, saved, overwrite, f"{cfg.name}.pt")
    if results:
        results = output_file(results, "--results", f"{cfg.name}.json")
    start = time.perf_counter()
    dist = distributed.from_env(device)
    try:
        seed_everything(cfg, dist.rank)
        task = build_task(cfg, saved, dist, prepared)
        summary = run_training(task, cfg, output, run_dir, resume=saved, dist=dist)
    finally:
        distributed.shutdown(dist)
    if not dist.main:
        return
    result = make_result(summary["metrics"], summary["data"], time.perf_counter() - start, checkpoint=str(output))
    result["world_size"] = dist.world
    result["device"] = str(dist.device)
    if summary["stopped"]:
        result["stopped"] = summary["stopped"]
    if results:
        write_result(results, result)
    if json_out:
        _emit_json(result)
    else:
        metrics = ", ".join(f"{k} {v}" for k, v in summary["metrics"].items())
        typer.echo(f"best checkpoint: {output}; {metrics}" + (f"; {summary['stopped']}" if summary["stopped"] else ""))


@app.command()
def sample(
    ckpt: Path = typer.Argument(..., help="Language-model checkpoint."),
    prime: str = typer.Option("", "--prime", "-p", help="Text to start from."),
    length: int = typer.Option(500, "--length", "-n", help="Tokens to generate."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="0 means greedy (argmax)."),
    top_k: int = typer.Option(0, "--top-k", help="Sample among the k most likely tokens (0: all)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Sample from the smallest set with this much probability."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed for a repeatable sample."),
    interactive: bool = typer.Option(False, "--interactive", help="Prompt for primes in a loop (Ctrl-D ends)."),
    device: str = _device_option("sample"),
) -> None:
    """Generate text one token at a time, streamed to stdout.

    Example: textgen sample shakespeare.pt --prime 'ROMEO:' --temperature 0.8 --seed 1
    """
    from textgen.api import LanguageModel, load

    lm = load(ckpt, device)
    if not isinstance(lm, LanguageModel):
        raise UserError(f"checkpoint '{ckpt}' holds a {lm.kind} model, this command needs a lm model")
    sep = lm.separator

    def stream(text: str) -> None:
        pieces = lm.stream(text, length, temperature, top_k, top_p, seed)
        first = next(pieces, None)  # raises a bad prime's error before anything is printed
        sys.stdout.write(text + (sep if text else ""))
        if first is not None:
            sys.stdout.write(first)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")

    if not interactive:
        stream(prime)
        return
    for line in _prompt_lines("prime> "):
        try:
            stream(line)
        except UserError as exc:  # a bad prime should not end the session
            typer.echo(f"error: {exc}", err=True)


@app.command("eval")
def eval_(
    ckpt: Optional[Path] = typer.Argument(None, help="Checkpoint to evaluate (omit with --hyp)."),
    data: Optional[str] = typer.Option(
        None, "--data", "-d", help="Corpus name or path \\[default: the training corpus]."
    ),
    split: str = typer.Option("valid", "--split", help="valid or test."),
    metric: list[str] = typer.Option(
        [], "--metric", "-m", help="bleu4, bleu4-lc, rouge1, rouge2, rougeL (repeatable)."
    ),
    hyp: list[Path] = typer.Option(
        [],
        "--hyp",
        help="Score this hypothesis file instead of a checkpoint "
        "(repeatable with a paired test: the first is the baseline).",
    ),
    ref: list[Path] = typer.Option([], "--ref", help="Reference file(s) for --hyp (repeatable: multi-reference)."),
    paired_bootstrap: int = typer.Option(
        0,
        "--paired-bootstrap",
        help="Compare the --hyp files by paired bootstrap resampling with N resamples (sacrebleu; 1000 is usual).",
    ),
    paired_ar: int = typer.Option(
        0,
        "--paired-ar",
        help="Compare the --hyp files by paired approximate randomization with N trials (sacrebleu; 10000 is usual).",
    ),
    beam: Optional[int] = typer.Option(
        None, "--beam", help="Seq2seq beam size \\[default: the recipe's]; 1 is greedy."
    ),
    mbr: Optional[int] = typer.Option(
        None, "--mbr", help="Seq2seq: MBR decoding over N sampled candidates per source instead of beam search."
    ),
    mbr_sampling: str = MBR_SAMPLING,
    mbr_utility: str = MBR_UTILITY,
    mbr_epsilon: float = MBR_EPSILON,
    mbr_top_p: float = MBR_TOP_P,
    mbr_beam: int = MBR_BEAM,
    seed: Optional[int] = typer.Option(
        None,
        "--seed",
        help="Seed of --mbr's sampling \\[default: 0] and of the "
        "paired tests' resampling \\[default: sacrebleu's, 12345].",
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="LM: parallel streams (1: state over the whole text); seq2seq: sentences."
    ),
    hyp_out: Optional[str] = typer.Option(
        None,
        "--hyp-out",
        metavar="PATH",
        help="Seq2seq: write the decoded hypotheses to this file, or into this folder (a path ending in /) "
        "under a name that holds every decoding setting \\[default: not written].",
    ),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="Seq2seq decoding: fp32, bf16 or fp16 (GPU) \\[default: the recipe's]."
    ),
    device: str = _device_option("run the model"),
    json_out: bool = typer.Option(False, "--json", help="Print a results JSON."),
    results: Optional[str] = typer.Option(None, "--results", metavar="PATH", help="Also write the results JSON here."),
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
    from textgen.device import resolve_device
    from textgen.results import make_result, write_result

    start = time.perf_counter()
    if results:
        results = output_file(results, "--results", "results.json")
    signatures: dict = {}
    extra: dict = {}
    comparisons: list[dict] = []
    if (paired_bootstrap or paired_ar) and not hyp:
        raise UserError(
            "--paired-bootstrap and --paired-ar compare systems' files: give --hyp BASE --hyp NEW --ref REF"
        )
    if hyp:
        if len(hyp) > 1 or paired_bootstrap or paired_ar:
            values = {}
            for name in metric or ["bleu4"]:
                comparisons.append(evaluate.compare_systems(hyp, ref, name, paired_bootstrap, paired_ar, seed))
                values.update(evaluate.comparison_values(comparisons[-1]))
                signatures.update({f"{name} {k}": v for k, v in comparisons[-1]["signatures"].items()})
            extra["systems"] = [str(h) for h in hyp]
        else:
            values, signatures = evaluate.eval_files(hyp[0], ref, metric or ["bleu4"])
        shas = evaluate.file_hashes([*hyp, *ref])  # after scoring, which reports unreadable files as user errors
    elif ckpt is None:
        raise UserError("give a checkpoint to evaluate, or --hyp FILE --ref FILE to score files")
    else:
        if split not in ("valid", "test"):
            raise UserError(f"--split must be valid or test, got '{split}'")
        if evaluate.checkpoint_kind(ckpt) == "lm":
            if mbr is not None or mbr_beam:
                raise UserError("--mbr decodes seq2seq checkpoints; this one is a language model")
            if hyp_out is not None:
                raise UserError("--hyp-out writes a seq2seq checkpoint's outputs; this one is a language model")
            streams = 10 if batch_size is None else batch_size
            values, shas = evaluate.eval_lm(ckpt, data, split, streams, resolve_device(device))
        else:
            values, shas, signatures, written = evaluate.eval_seq2seq(
                ckpt,
                data,
                split,
                metric or ["bleu4"],
                hyp_out,
                resolve_device(device),
                beam=beam,
                batch_size=batch_size,
                precision=precision,
                mbr=mbr,
                mbr_sampling=mbr_sampling,
                mbr_utility=mbr_utility,
                mbr_epsilon=mbr_epsilon,
                mbr_top_p=mbr_top_p,
                mbr_beam=mbr_beam,
                seed=seed,
            )
            if written:
                typer.echo(f"hypotheses: {written}", err=True)
                extra["hypotheses"] = str(written)
    if ckpt:
        extra["checkpoint"] = str(ckpt)
    if signatures:
        extra["signatures"] = signatures
    result = make_result(values, shas, time.perf_counter() - start, **extra)
    if results:
        write_result(results, result)
    if json_out:
        _emit_json(result)
    elif comparisons:
        for comparison in comparisons:
            typer.echo("\n".join(evaluate.format_comparison(comparison)))
    else:
        for name, sig in signatures.items():
            typer.echo(f"{name} signature: {sig}")
        typer.echo(", ".join(f"{k} {v}" for k, v in values.items()))


@app.command()
def decode(
    ckpt: Path = typer.Argument(..., help="Seq2seq checkpoint."),
    input: Optional[Path] = typer.Option(
        None, "--input", "-i", help="Source file, one sentence a line \\[default: stdin]."
    ),
    beam: Optional[int] = typer.Option(None, "--beam", help="Beam size \\[default: the recipe's]; 1 is greedy."),
    nbest: int = typer.Option(1, "--nbest", help="Print the n best: index<TAB>score<TAB>text (1: the best alone)."),
    lenpen: Optional[float] = typer.Option(None, "--lenpen", help="Length penalty: score / length**lenpen."),
    max_len_a: Optional[float] = typer.Option(None, "--max-len-a", help="Max output length = a * source length + b."),
    max_len_b: Optional[int] = typer.Option(None, "--max-len-b"),
    no_repeat_ngram: Optional[int] = typer.Option(
        None, "--no-repeat-ngram", help="Forbid repeating any n-gram of this size \\[default: the recipe's]."
    ),
    sample: bool = typer.Option(False, "--sample", help="Sample instead of searching."),
    temperature: Optional[float] = typer.Option(
        None,
        "--temperature",
        "-t",
        help="Of --sample and --mbr's candidates "
        f"\\[default: the recipe's decode.temperature, {DecodeConfig.temperature:g}].",
    ),
    seed: Optional[int] = typer.Option(
        None,
        "--seed",
        help="Seed of --sample (a source's sample depends on it and the source alone) \\[default: drawn] "
        "and of --mbr \\[default: 0].",
    ),
    mbr: Optional[int] = typer.Option(
        None,
        "--mbr",
        help="MBR decoding: sample N candidates per source, print the "
        "one with the highest expected utility against the others.",
    ),
    mbr_sampling: str = MBR_SAMPLING,
    mbr_utility: str = MBR_UTILITY,
    mbr_epsilon: float = MBR_EPSILON,
    mbr_top_p: float = MBR_TOP_P,
    mbr_beam: int = MBR_BEAM,
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Sentences decoded together."),
    interactive: bool = typer.Option(False, "--interactive", help="Prompt for one source at a time (Ctrl-D ends)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="fp32, bf16 or fp16 (GPU) \\[default: the recipe's]."
    ),
    device: str = _device_option("decode"),
) -> None:
    """Translate / summarize: read sources, write one hypothesis per line (n-best: index, score, text).

    Example: echo 'Ein Mann fährt Fahrrad.' | textgen decode mt.pt --beam 5

    MBR: textgen decode mt.pt -i test.de --mbr 32 --mbr-sampling epsilon --mbr-utility chrf --seed 1
    """
    from textgen.api import Translator, load
    from textgen.data.parallel import read_lines

    mt = load(ckpt, device)
    if not isinstance(mt, Translator):
        raise UserError(f"checkpoint '{ckpt}' holds a {mt.kind} model, this command needs a seq2seq model")
    settings = dict(
        beam=beam,
        nbest=nbest,
        lenpen=lenpen,
        sample=sample,
        temperature=temperature,
        seed=seed,
        mbr=mbr,
        mbr_sampling=mbr_sampling,
        mbr_utility=mbr_utility,
        mbr_epsilon=mbr_epsilon,
        mbr_top_p=mbr_top_p,
        mbr_beam=mbr_beam,
        **{
            k: v
            for k, v in dict(
                no_repeat_ngram=no_repeat_ngram,
                max_len_a=max_len_a,
                max_len_b=max_len_b,
                batch_size=batch_size,
                precision=precision,
            ).items()
            if v is not None
        },
    )
    mt.translate([], **settings)  # bad settings fail here, before any input is read

    def emit(lines: list[str], first: int = 0) -> None:
        out = mt.translate(lines, progress=not interactive, **settings)
        for i, hyp in enumerate(out, first):
            if nbest == 1:
                typer.echo(hyp)
            else:
                for text, score in hyp:
                    typer.echo(f"{i}\t{score:.4f}\t{text}")

    if interactive:
        for i, line in enumerate(_prompt_lines("source> ")):
            if line.strip():
                emit([line], i)
        return
    lines = read_lines(input) if input else _stdin_lines()
    if lines:
        emit(lines)


@app.command()
def score(
    ckpt: Path = typer.Argument(..., help="Checkpoint (seq2seq or language model)."),
    src: Optional[Path] = typer.Option(None, "--src", help="Seq2seq: source file, one sentence a line."),
    tgt: Optional[Path] = typer.Option(None, "--tgt", help="Seq2seq: the targets to score, line-aligned with --src."),
    text: Optional[Path] = typer.Option(None, "--text", help="Language model: the lines to score."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object a line, with per-token log-probs."),
    device: str = _device_option("run the model"),
) -> None:
    """Forced decoding: the log-probability the model gives to given outputs, one line out per input line.

    Prints total<TAB>tokens<TAB>mean (natural log; tokens include EOS for seq2seq).

    Examples:

      textgen score mt.pt --src test.de --tgt hyps.en

      textgen score shakespeare.pt --text lines.txt --json
    """
    from textgen.api import Translator, load
    from textgen.data.parallel import read_lines

    model = load(ckpt, device)
    if isinstance(model, Translator):
        if src is None or tgt is None or text is not None:
            raise UserError("a seq2seq checkpoint scores --src FILE --tgt FILE (line-aligned), not --text")
        scored = model.score(read_lines(src), read_lines(tgt))
    else:
        if text is None or src is not None or tgt is not None:
            raise UserError("a language-model checkpoint scores --text FILE, not --src/--tgt")
        scored = model.score(read_lines(text))
    for item in scored:
        if json_out:
            typer.echo(json.dumps(item.to_dict(), ensure_ascii=False))
        else:
            typer.echo(f"{item.total:.4f}\t{len(item.logprobs)}\t{item.mean:.4f}")


@app.command()
def serve(
    ckpt: Path = typer.Argument(..., help="Checkpoint to serve (seq2seq or language model)."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on; 0.0.0.0 opens it to the network (there is no authentication).",
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free one, logged)."),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="Most sentences translated in one batch."),
    window_ms: float = typer.Option(
        10.0, "--window-ms", min=0.0, help="How long an idle server waits to gather concurrent requests into a batch."
    ),
    max_sources: int = typer.Option(64, "--max-sources", min=1, help="Most sources (targets, texts) per request."),
    max_input_chars: int = typer.Option(
        1000, "--max-input-chars", min=1, help="Longest source, target, text or prime, in characters."
    ),
    max_length: int = typer.Option(1000, "--max-length", min=0, help="Largest /sample length, in tokens."),
    timeout_s: float = typer.Option(
        30.0, "--timeout-s", min=0.001, help="Longest wait for a request's body or its result (then 408 / 503)."
    ),
    max_work: int = typer.Option(
        200_000, "--max-work", min=1, help="Most decoder steps per /translate: beam x sources x output-length limit."
    ),
    max_queued: int = typer.Option(4096, "--max-queued", min=1, help="Most sentences waiting before 503 busy."),
    max_connections: int = typer.Option(512, "--max-connections", min=1, help="Most open connections before 503."),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="Host name the server answers besides localhost and --host (repeat; '*': any)."
    ),
    device: str = _device_option("run the model"),
) -> None:
    """Serve a checkpoint over HTTP: POST /translate, /sample, /score (JSON), GET /health, a try-it page at /.

    Concurrent /translate requests with the same settings are decoded together, in one worker thread.

    Example: textgen serve checkpoints/translate-multi30k.pt --port 8080
    """
    try:
        import pydantic  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError("textgen serve needs starlette, uvicorn and pydantic: pip install 'textgen[serve]'") from None
    from textgen.serve import Limits
    from textgen.serve import serve as run_server

    run_server(
        ckpt,
        host,
        port,
        device,
        Limits(
            max_batch=max_batch,
            window_ms=window_ms,
            max_sources=max_sources,
            max_input_chars=max_input_chars,
            max_length=max_length,
            timeout_s=timeout_s,
            max_work=max_work,
            max_queued=max_queued,
            max_connections=max_connections,
        ),
        allow_host,
    )


@app.command()
def plot(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders (runs/NAME-...) or metrics.csv files."),
    output: str = typer.Option("curves.png", "--output", "-o", metavar="PATH", help="PNG to write."),
    label: list[str] = typer.Option([], "--label", help="Legend label per run, in order."),
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
def data_get(name: str = typer.Argument(..., help="Corpus name (see `textgen data list`).")) -> None:
    """Fetch a corpus (mirror folder first, else its URL) and verify its sha256.

    Example: TEXTGEN_DATA_MIRROR=/data/mirror textgen data get multi30k
    """
    from textgen.data.registry import fetch

    for file, path in fetch(name).items():
        typer.echo(f"{file}: {path} (sha256 ok)")


@data_app.command("prepare")
def data_prepare(
    corpus: Optional[str] = typer.Argument(
        None,
        help="Registry name, a text file (LM) or 'train.src,train.tgt;valid.src,valid.tgt' \\[default: the recipe's].",
    ),
    recipe: str = typer.Option(..., "--recipe", "-r", help="The recipe whose tokenizer settings to prepare with."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Override a recipe key: section.key=value."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder to make \\[default: in the cache]."),
) -> None:
    """Tokenize a corpus once into memory-mapped arrays that every later `textgen train` reuses.

    `textgen train` does this by itself the first time (the folder is keyed by the data's sha256 and the
    tokenizer settings); run it ahead of time for a big corpus, or with -o for shared storage and
    `textgen train --prepared FOLDER`.

    Example: textgen data prepare "train.de,train.en;valid.de,valid.en" --recipe translate-multi30k
    """
    from dataclasses import replace

    from textgen.config import load_recipe

    cfg = load_recipe(recipe, overrides)
    if corpus:
        cfg = replace(cfg, data=replace(cfg.data, corpus=corpus))
    if output is not None and output.exists():
        raise UserError(f"'{output}' already exists: give a new folder (prepared folders are never overwritten)")
    if cfg.task == "lm":
        from textgen.data.prepared_text import prepare_text

        data = prepare_text(cfg, dest=output)
    else:
        from textgen.data.prepared_parallel import prepare_parallel
        from textgen.seq2seq import sentencepiece_note

        data = prepare_parallel(cfg, dest=output)
        if note := sentencepiece_note(cfg.data, data.vocabs):
            typer.echo(note, err=True)
    m = data.manifest
    typer.echo(f"{data.folder}: {json.dumps(m['splits'])}; prepared in {m['prepare_seconds']} s")


def main() -> None:
    quiet = os.environ.get("RANK", "0") != "0"  # under torchrun, rank 0 speaks for all
    try:
        app()
    except UserError as exc:
        if not quiet or isinstance(exc, RankError):
            typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Interrupted as exc:
        if not quiet:
            typer.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:  # a write that no checkpoint-style handler covers (logs, results, hypotheses)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f"'{exc.filename}'" if exc.filename else "a file"
        typer.echo(f"error: writing {where} failed: the disk is full or over quota; free space and run again", err=True)
        sys.exit(2)
    except (MemoryError, RuntimeError) as exc:  # e.g. a model too large to build, before training starts
        if not out_of_memory(exc):
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(
            f"error: out of memory ({first_line}): use a smaller model or batch (model.hidden, model.layers, "
            "train.batch_size, train.max_tokens)",
            err=True,
        )
        sys.exit(2)
