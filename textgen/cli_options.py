"""The options of every `textgen` command with their help texts (`cli.py` holds what the commands do): one
definition per option, shared where commands take the same one (--set, the MBR options), so that help texts,
defaults and docs/CLI.md stay in step."""

from __future__ import annotations

import typer

from textgen.config import DecodeConfig, MbrConfig


def _flags_show_no_type() -> None:
    """typer (0.29) prints a type beside every option in help panels, `<bool>` for flags too (`--json <bool>`,
    `--help <bool>`), as if they took a value: a flag shows none."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is not None:  # older typer versions print no type for flags
        TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else shown(self, ctx)


_flags_show_no_type()


def device(what: str):
    """--device, with what the device is for."""
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


TRAIN_RECIPE = typer.Option(None, "--recipe", "-r", help="Recipe name (recipes/NAME.toml) or path.")
SET = typer.Option([], "--set", "-s", help="Override a recipe key: section.key=value.")
TRAIN_OUTPUT = typer.Option(None, "--output", "-o", metavar="PATH", help="Best checkpoint path \\[default: ./NAME.pt].")
TRAIN_OVERWRITE = typer.Option(
    False, "--overwrite", help="Let a new run replace an existing -o checkpoint and --run-dir's last.pt."
)
TRAIN_RESUME = typer.Option(
    None,
    "--resume",
    help="Continue from a checkpoint (e.g. runs/RUN/last.pt) with the recipe and --set it was started with.",
)
TRAIN_RUN_DIR = typer.Option(None, "--run-dir", help="Where metrics.csv, recipe.toml, last.pt go.")
TRAIN_RESULTS = typer.Option(None, "--results", metavar="PATH", help="Also write a results JSON here.")
TRAIN_JSON_OUT = typer.Option(False, "--json", help="Print final metrics as JSON.")
TRAIN_NPROC = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine (started for you).")
TRAIN_PREPARED = typer.Option(
    None, "--prepared", help="A folder from `textgen data prepare` \\[default: found or made in the cache]."
)

SAMPLE_CKPT = typer.Argument(..., help="Language-model checkpoint.")
SAMPLE_PRIME = typer.Option("", "--prime", "-p", help="Text to start from.")
SAMPLE_LENGTH = typer.Option(500, "--length", "-n", help="Tokens to generate.")
SAMPLE_TEMPERATURE = typer.Option(1.0, "--temperature", "-t", help="0 means greedy (argmax).")
SAMPLE_TOP_K = typer.Option(0, "--top-k", help="Sample among the k most likely tokens (0: all).")
SAMPLE_TOP_P = typer.Option(1.0, "--top-p", help="Sample from the smallest set with this much probability.")
SAMPLE_SEED = typer.Option(None, "--seed", help="Random seed for a repeatable sample.")
SAMPLE_INTERACTIVE = typer.Option(False, "--interactive", help="Prompt for primes in a loop (Ctrl-D ends).")

EVAL_CKPT = typer.Argument(None, help="Checkpoint to evaluate (omit with --hyp); several seq2seq ones: their ensemble.")
EVAL_DATA = typer.Option(None, "--data", "-d", help="Corpus name or path \\[default: the training corpus].")
EVAL_SPLIT = typer.Option("valid", "--split", help="valid or test.")
EVAL_METRIC = typer.Option([], "--metric", "-m", help="bleu4, bleu4-lc, rouge1, rouge2, rougeL (repeatable).")
EVAL_HYP = typer.Option(
    [],
    "--hyp",
    help="Score this hypothesis file instead of a checkpoint "
    "(repeatable with a paired test: the first is the baseline).",
)
EVAL_REF = typer.Option([], "--ref", help="Reference file(s) for --hyp (repeatable: multi-reference).")
EVAL_PAIRED_BOOTSTRAP = typer.Option(
    0,
    "--paired-bootstrap",
    help="Compare the --hyp files by paired bootstrap resampling with N resamples (sacrebleu; 1000 is usual).",
)
EVAL_PAIRED_AR = typer.Option(
    0,
    "--paired-ar",
    help="Compare the --hyp files by paired approximate randomization with N trials (sacrebleu; 10000 is usual).",
)
EVAL_BEAM = typer.Option(None, "--beam", help="Seq2seq beam size \\[default: the recipe's]; 1 is greedy.")
EVAL_MBR = typer.Option(
    None, "--mbr", help="Seq2seq: MBR decoding over N sampled candidates per source instead of beam search."
)
EVAL_SEED = typer.Option(
    None,
    "--seed",
    help="Seed of --mbr's sampling \\[default: the recipe's decode.mbr.seed] and of the paired tests' "
    "resampling \\[default: sacrebleu's, 12345].",
)
EVAL_BATCH_SIZE = typer.Option(
    None, "--batch-size", help="LM: parallel streams (1: state over the whole text); seq2seq: sentences."
)
EVAL_HYP_OUT = typer.Option(
    None,
    "--hyp-out",
    metavar="PATH",
    help="Seq2seq: write the decoded hypotheses to this file, or into this folder (a path ending in /) "
    "under a name that holds every decoding setting \\[default: not written].",
)
EVAL_PRECISION = typer.Option(
    None, "--precision", help="Seq2seq decoding: fp32, bf16 or fp16 (GPU) \\[default: the recipe's]."
)
EVAL_JSON_OUT = typer.Option(False, "--json", help="Print a results JSON.")
EVAL_RESULTS = typer.Option(None, "--results", metavar="PATH", help="Also write the results JSON here.")

DECODE_CKPT = typer.Argument(..., help="Seq2seq checkpoint; several with the same vocabularies: their ensemble.")
DECODE_INPUT = typer.Option(None, "--input", "-i", help="Source file, one sentence a line \\[default: stdin].")
DECODE_BEAM = typer.Option(None, "--beam", help="Beam size \\[default: the recipe's]; 1 is greedy.")
DECODE_NBEST = typer.Option(1, "--nbest", help="Print the n best: index<TAB>score<TAB>text (1: the best alone).")
DECODE_LENPEN = typer.Option(None, "--lenpen", help="Length penalty: score / length**lenpen.")
DECODE_MAX_LEN_A = typer.Option(None, "--max-len-a", help="Max output length = a * source length + b.")
DECODE_MAX_LEN_B = typer.Option(None, "--max-len-b")
DECODE_NO_REPEAT_NGRAM = typer.Option(
    None, "--no-repeat-ngram", help="Forbid repeating any n-gram of this size \\[default: the recipe's]."
)
DECODE_SAMPLE = typer.Option(False, "--sample", help="Sample instead of searching.")
DECODE_TEMPERATURE = typer.Option(
    None,
    "--temperature",
    "-t",
    help="Of --sample and --mbr's candidates "
    f"\\[default: the recipe's decode.temperature, {DecodeConfig.temperature:g}].",
)
DECODE_SEED = typer.Option(
    None,
    "--seed",
    help="Seed of --sample (a source's sample depends on it and the source alone) \\[default: drawn] "
    "and of --mbr \\[default: the recipe's decode.mbr.seed].",
)
DECODE_MBR = typer.Option(
    None,
    "--mbr",
    help="MBR decoding: sample N candidates per source, print the "
    "one with the highest expected utility against the others.",
)
DECODE_BATCH_SIZE = typer.Option(None, "--batch-size", help="Sentences decoded together.")
DECODE_INTERACTIVE = typer.Option(False, "--interactive", help="Prompt for one source at a time (Ctrl-D ends).")
DECODE_PRECISION = typer.Option(None, "--precision", help="fp32, bf16 or fp16 (GPU) \\[default: the recipe's].")

SCORE_CKPT = typer.Argument(..., help="Checkpoint (seq2seq or language model); several seq2seq ones: their ensemble.")
SCORE_SRC = typer.Option(None, "--src", help="Seq2seq: source file, one sentence a line.")
SCORE_TGT = typer.Option(None, "--tgt", help="Seq2seq: the targets to score, line-aligned with --src.")
SCORE_TEXT = typer.Option(None, "--text", help="Language model: the lines to score.")
SCORE_JSON_OUT = typer.Option(False, "--json", help="One JSON object a line, with per-token log-probs.")

RERANK = typer.Option(
    None, "--rerank", metavar="FILE", help="Rerank the n best with the weights and models `textgen rerank` wrote."
)
RERANK_CKPT = typer.Argument(..., help="The forward seq2seq checkpoint (several: their ensemble).")
RERANK_REVERSE = typer.Option(None, "--reverse", help="A seq2seq checkpoint of the other direction (target->source).")
RERANK_LM = typer.Option(None, "--lm", help="A language-model checkpoint of the target side.")
RERANK_NBEST = typer.Option(8, "--nbest", help="Candidates per source: the n best of a beam this wide.")
RERANK_METRIC = typer.Option("bleu4", "--metric", "-m", help="The corpus metric the weights maximise.")
RERANK_BATCH_SIZE = typer.Option(None, "--batch-size", help="Sources decoded together \\[default: the recipe's].")
RERANK_OUTPUT = typer.Option(..., "--output", "-o", help="Where to write the weights (JSON).")

AVERAGE_INPUTS = typer.Argument(
    ..., help="A run folder (the checkpoints it kept: train.keep_checkpoints) or checkpoint files of one run."
)
AVERAGE_OUTPUT = typer.Option(..., "--output", "-o", help="Where to write the averaged checkpoint.")
AVERAGE_LAST = typer.Option(0, "--last", min=0, help="Average the newest N of them (0: all).")

SERVE_CKPT = typer.Argument(..., help="Checkpoint to serve (seq2seq or language model); several seq2seq: an ensemble.")
SERVE_HOST = typer.Option(
    "127.0.0.1",
    "--host",
    help="Address to listen on; 0.0.0.0 opens it to the network (there is no authentication).",
)
SERVE_PORT = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free one, logged).")
SERVE_MAX_BATCH = typer.Option(32, "--max-batch", min=1, help="Most sentences translated in one batch.")
SERVE_WINDOW_MS = typer.Option(
    10.0, "--window-ms", min=0.0, help="How long an idle server waits to gather concurrent requests into a batch."
)
SERVE_MAX_SOURCES = typer.Option(64, "--max-sources", min=1, help="Most sources (targets, texts) per request.")
SERVE_MAX_INPUT_CHARS = typer.Option(
    1000, "--max-input-chars", min=1, help="Longest source, target, text or prime, in characters."
)
SERVE_MAX_LENGTH = typer.Option(1000, "--max-length", min=0, help="Largest /sample length, in tokens.")
SERVE_TIMEOUT_S = typer.Option(
    30.0, "--timeout-s", min=0.001, help="Longest wait for a request's body or its result (then 408 / 503)."
)
SERVE_MAX_WORK = typer.Option(
    200_000, "--max-work", min=1, help="Most decoder steps per /translate: beam x sources x output-length limit."
)
SERVE_MAX_QUEUED = typer.Option(4096, "--max-queued", min=1, help="Most sentences waiting before 503 busy.")
SERVE_MAX_CONNECTIONS = typer.Option(512, "--max-connections", min=1, help="Most open connections before 503.")
SERVE_ALLOW_HOST = typer.Option(
    [], "--allow-host", help="Host name the server answers besides localhost and --host (repeat; '*': any)."
)

PLOT_RUN_DIRS = typer.Argument(..., help="Run folders (runs/NAME-...) or metrics.csv files.")
PLOT_OUTPUT = typer.Option("curves.png", "--output", "-o", metavar="PATH", help="PNG to write.")
PLOT_LABEL = typer.Option([], "--label", help="Legend label per run, in order.")

DATA_GET_NAME = typer.Argument(..., help="Corpus name (see `textgen data list`).")
DATA_PREPARE_CORPUS = typer.Argument(
    None,
    help="Registry name, a text file (LM) or 'train.src,train.tgt;valid.src,valid.tgt' \\[default: the recipe's].",
)
DATA_PREPARE_RECIPE = typer.Option(..., "--recipe", "-r", help="The recipe whose tokenizer settings to prepare with.")
DATA_PREPARE_OUTPUT = typer.Option(None, "--output", "-o", help="Folder to make \\[default: in the cache].")
