"""Recipes: frozen dataclasses loaded from TOML, with type-checked dotted `--set` overrides.

A recipe is data; one trainer reads it. Unknown keys and wrong types are errors that name the
valid keys, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgen.errors import UserError
from textgen.paths import recipes_dir


@dataclass(frozen=True)
class DataConfig:
    corpus: str = "tinyshakespeare"  # registry name, or a path to a UTF-8 text file
    level: str = "char"  # char | word
    holdout: float = 0.1  # one-file corpora: the tail kept out of training, first half validation, second half test
    min_freq: int = 1  # word level: rarer words become <unk>
    max_vocab: int = 0  # word level: keep the most frequent N words (0: no limit)
    tokenizer: str = "spm"  # seq2seq: spm (joint sentencepiece, trained in-process) | word
    vocab_size: int = 8000  # seq2seq spm: pieces in the joint vocabulary
    target_vocab: str = "joint"  # seq2seq spm: joint | targets (decoder spans only pieces seen in training targets;
    # word vocabularies are per side, so already "targets")
    lowercase: bool = False  # seq2seq word level: lowercase before counting
    max_source_tokens: int = 0  # seq2seq: truncate sources to this many tokens (0: keep all)
    # seq2seq: drop training pairs with a side longer than this many tokens (0: keep all); 256 keeps every pair of
    # Multi30k, Tatoeba and AESLC (sources cut to 100) and drops a stray document that would not fit in memory
    max_len: int = 256


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # rnn (Elman, tanh) | lstm | gru
    layers: int = 2
    hidden: int = 512
    embed: int = 0  # 0: same as hidden
    dropout: float = 0.0
    tie_weights: bool = False
    init_range: float = 0.0  # >0: uniform(-r, r) init of every weight (Zaremba et al.)
    attention: str = "general"  # seq2seq: general | dot (Luong) | bahdanau (additive)
    input_feeding: bool = False  # seq2seq: feed the attentional vector to the next step (slower: no fused LSTM)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1337
    batch_size: int = 32  # parallel streams
    bptt: int = 128  # truncated-BPTT window
    optimizer: str = "adam"  # sgd | adam | adamw | rmsprop
    lr: float = 2e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip: float = 5.0  # global gradient-norm clip (0: off)
    loss_norm: str = "tokens"  # divide the summed loss by: tokens (mean) | batch (sum over time, as Zaremba et al.)
    epochs: float = 1.0
    max_steps: int = 0  # >0: stop after this many updates (overrides epochs)
    max_minutes: float = 0.0  # >0: wall-clock budget (validation and checkpoints included); training stops when spent
    lr_schedule: str = "constant"  # constant | cosine | step | plateau
    warmup_steps: int = 0
    decay_after_epochs: int = 0  # step: keep lr for this many epochs, then multiply by decay_factor each epoch
    decay_factor: float = 0.5  # step / plateau factor
    patience: int = 0  # plateau: validations without improvement before decaying
    min_lr_ratio: float = 0.0  # cosine: final lr as a fraction of lr
    eval_every: int = 0  # validate every N updates (0: once per epoch)
    eval_batch_size: int = 32
    max_tokens: int = 0  # seq2seq: padded tokens per batch (token-budget batches of similar length)
    label_smoothing: float = 0.0
    valid_metric: str = "loss"  # seq2seq: loss | bleu4 | rouge2: picks the best checkpoint
    valid_subset: int = 0  # seq2seq: decode this many validation sentences for the metric (0: all)
    log_every: int = 50
    threads: int = 0  # torch intra-op threads (0: torch default)
    tensorboard: bool = False  # also log metrics to RUN_DIR/tensorboard (needs the tensorboard package)
    # fp32 | bf16 | fp16: autocast, weights stay fp32; bf16 ~1.5x faster on CPUs with AVX512-BF16/AMX;
    # fp16: CUDA only, loss-scaled
    precision: str = "fp32"


@dataclass(frozen=True)
class ObjectiveConfig:
    """Sequence-level objectives (Ranzato et al. 2016); see shared notes for the paper's values."""

    name: str = "xent"  # xent | dad | e2e | reinforce | mixer | scst | mrt
    # DAD: probability of feeding the model's own prediction, growing over training
    dad_schedule: str = "linear"  # linear | inverse_sigmoid
    dad_max_p: float = 0.25  # linear: p rises from 0 to this over dad_ramp_epochs
    dad_ramp_epochs: float = 10.0
    # inverse sigmoid (Bengio et al.), k counted in updates: p = 1 - k / (k + exp(update / k)), 1/2 at k ln k updates
    dad_k_updates: float = 1000.0
    dad_sample: bool = False  # feed a sample instead of the argmax
    # E2E: feed the renormalised top-k softmax mixture of embeddings
    e2e_k: int = 10
    # MIXER schedule (Algorithm 1): s = T for xent_epochs, then T - delta every epochs_per_stage epochs
    mixer_T: int = 25
    mixer_delta: int = 3
    mixer_xent_epochs: float = 25.0
    mixer_epochs_per_stage: float = 5.0  # may be fractional: short fine-tunes anneal within an epoch
    mixer_min_s: int = 0
    xent_weight: float = 0.5  # weight of the XENT part once s < T (the REINFORCE part gets 1 - this)
    # REINFORCE
    # bleu (sentence BLEU, +1 smoothing) | bleu-sampled (the paper's: only n-grams with a sampled token count)
    # | rouge2 | rouge1 | rouge-mix
    reward: str = "bleu"
    # learned (one linear regressor on h_t) | learned-per-step (one per decoder step, as the paper's code)
    # | loo (the mean reward of the source's other samples) | none
    baseline: str = "learned"
    baseline_lr: float = 1e-3  # the regressor's own fixed lr (not decayed with the model's)
    sample_temperature: float = 1.0
    samples: int = 1  # rollouts per source and update (loo needs >= 2; Kool et al. 2019 use 4)
    # MRT (Shen et al. 2016; Edunov et al. 2018): expected cost 1 - reward over a candidate set, mixed with XENT
    mrt_candidates: int = 8  # samples per source, drawn without gradient and deduplicated (0: beam only)
    mrt_beam: int = 0  # also the n-best of a beam search of this width (Edunov et al.'s candidates; 0: samples only)
    mrt_alpha: float = 1.0  # sharpness: q(y) ~ p(y|x)^alpha renormalised over the candidates (Shen et al.: 5e-3)
    mrt_reference: bool = False  # add the reference to every candidate set


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = 5
    nbest: int = 1
    lenpen: float = 1.0
    max_len_a: float = 1.5
    max_len_b: int = 10
    no_repeat_ngram: int = 0
    batch_size: int = 64  # sentences decoded together
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA) (autocast while decoding; scores are accumulated in fp32)


@dataclass(frozen=True)
class Recipe:
    name: str = "custom"
    description: str = ""
    task: str = "lm"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    init_from: str = ""  # seq2seq: start from this checkpoint's weights and vocabulary (e.g. an XENT model)


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "decode": DecodeConfig,
    "objective": ObjectiveConfig,
}
CHOICES = {
    "task": ("lm", "seq2seq"),
    "data.tokenizer": ("spm", "word"),
    "data.target_vocab": ("joint", "targets"),
    "train.valid_metric": ("loss", "bleu4", "rouge2"),
    "objective.name": ("xent", "dad", "e2e", "reinforce", "mixer", "scst", "mrt"),
    "objective.dad_schedule": ("linear", "inverse_sigmoid"),
    "objective.reward": ("bleu", "bleu-sampled", "rouge2", "rouge1", "rouge-mix"),
    "objective.baseline": ("learned", "learned-per-step", "loo", "none"),
    "data.level": ("char", "word"),
    "model.cell": ("rnn", "lstm", "gru"),
    "model.attention": ("general", "dot", "bahdanau"),
    "train.optimizer": ("sgd", "adam", "adamw", "rmsprop"),
    "train.loss_norm": ("tokens", "batch"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "decode.precision": ("fp32", "bf16", "fp16"),
    "train.lr_schedule": ("constant", "cosine", "step", "plateau"),
}


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: always finite, from `low` to `high` (None: unbounded);
    `above` / `below` leave the bound itself out (lr > 0, dropout < 1)."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    below: bool = False

    def __contains__(self, value: float) -> bool:
        if not isinstance(value, int) and not math.isfinite(value):  # ints are finite (and may exceed a float)
            return False
        low_ok = self.low is None or value > self.low or (value == self.low and not self.above)
        return low_ok and (self.high is None or value < self.high or (value == self.high and not self.below))

    def describe(self, integer: bool) -> str:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.above else '>='} {self.low}")
        if self.high is not None:
            bounds.append(f"{'<' if self.below else '<='} {self.high}")
        return ("an integer " if integer else "a finite number ") + " and ".join(bounds)


NONNEGATIVE = Range(0)  # counts and budgets where 0 means "off" / "no limit"
POSITIVE = Range(0, above=True)
AT_LEAST_1 = Range(1)
PROBABILITY = Range(0, 1)
BELOW_1 = Range(0, 1, below=True)
SIZE = Range(1, 1 << 20)  # batch and window sizes: large values fail in allocation, absurd ones here
WIDTH = Range(1, 1 << 16)  # layer widths and search widths
# Every numeric recipe key's range, checked when a recipe is read (tests check that none is missing).
# The caps are far beyond what fits in memory: they catch typos, not tuning.
RANGES = {
    "data.holdout": Range(0, 1, above=True, below=True),
    "data.min_freq": AT_LEAST_1,
    "data.max_vocab": NONNEGATIVE,
    "data.vocab_size": Range(32, 1 << 22),  # sentencepiece needs the 4 special pieces and every character
    "data.max_source_tokens": NONNEGATIVE,
    "data.max_len": NONNEGATIVE,
    "model.layers": Range(1, 64),
    "model.hidden": WIDTH,
    "model.embed": Range(0, 1 << 16),
    "model.dropout": BELOW_1,
    "model.init_range": NONNEGATIVE,
    "train.seed": Range(0, 2**32 - 1),
    "train.batch_size": SIZE,
    "train.bptt": SIZE,
    "train.lr": POSITIVE,
    "train.momentum": BELOW_1,
    "train.weight_decay": NONNEGATIVE,
    "train.clip": NONNEGATIVE,
    "train.epochs": POSITIVE,
    "train.max_steps": NONNEGATIVE,
    "train.max_minutes": NONNEGATIVE,
    "train.warmup_steps": NONNEGATIVE,
    "train.decay_after_epochs": NONNEGATIVE,
    "train.decay_factor": Range(0, 1, above=True),
    "train.patience": NONNEGATIVE,
    "train.min_lr_ratio": PROBABILITY,
    "train.eval_every": NONNEGATIVE,
    "train.eval_batch_size": SIZE,
    "train.max_tokens": Range(0, 1 << 24),
    "train.label_smoothing": BELOW_1,
    "train.valid_subset": NONNEGATIVE,
    "train.log_every": AT_LEAST_1,
    "train.threads": Range(0, 1024),
    "objective.dad_max_p": PROBABILITY,
    "objective.dad_ramp_epochs": NONNEGATIVE,
    "objective.dad_k_updates": AT_LEAST_1,
    "objective.e2e_k": WIDTH,
    "objective.mixer_T": AT_LEAST_1,
    "objective.mixer_delta": NONNEGATIVE,
    "objective.mixer_xent_epochs": NONNEGATIVE,
    "objective.mixer_epochs_per_stage": POSITIVE,
    "objective.mixer_min_s": NONNEGATIVE,
    "objective.xent_weight": PROBABILITY,
    "objective.baseline_lr": POSITIVE,
    "objective.sample_temperature": POSITIVE,
    "objective.samples": Range(1, 1024),
    "objective.mrt_candidates": Range(0, 1024),
    "objective.mrt_beam": Range(0, 1024),
    "objective.mrt_alpha": POSITIVE,
    "decode.beam": Range(1, 1024),
    "decode.nbest": Range(1, 1024),
    "decode.lenpen": Range(0, 10),
    "decode.max_len_a": Range(0, 100),
    "decode.max_len_b": Range(0, 1 << 16),
    "decode.no_repeat_ngram": NONNEGATIVE,
    "decode.batch_size": SIZE,
}


def valid_keys() -> list[str]:
    keys = [f.name for f in dataclasses.fields(Recipe) if f.name not in SECTIONS]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _unknown_key(key: str) -> UserError:
    keys = valid_keys()
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UserError(f"unknown recipe key '{key}': {hint}valid keys are {', '.join(keys)}")


def _coerce(key: str, value: Any, expected: Any, check_range: bool = True) -> Any:
    """Check `value` against the field type and its range; ints are accepted where floats are expected."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise UserError(f"recipe key '{key}' must be {expected.__name__}, got {type(value).__name__} {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise UserError(f"recipe key '{key}' must be one of {', '.join(CHOICES[key])}, got {value!r}")
    if check_range and key in RANGES and value not in RANGES[key]:
        raise UserError(f"{key} = {value!r} is out of range: {RANGES[key].describe(expected is int)}")
    return value


def from_dict(raw: dict[str, Any], check_ranges: bool = True) -> Recipe:
    """Build a Recipe from nested dicts (parsed TOML), rejecting unknown keys, wrong types and (unless
    `check_ranges` is off: a checkpoint's recipe, valid when it was trained) values out of range."""
    top_hints = typing.get_type_hints(Recipe)
    top: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise UserError(f"recipe key '{key}' must be a [{key}] table")
            cls = SECTIONS[key]
            hints = typing.get_type_hints(cls)
            for sub in value:
                if sub not in hints:
                    raise _unknown_key(f"{key}.{sub}")
            top[key] = cls(**{k: _coerce(f"{key}.{k}", v, hints[k], check_ranges) for k, v in value.items()})
        elif key in top_hints:
            top[key] = _coerce(key, value, top_hints[key])
        else:
            raise _unknown_key(key)
    return Recipe(**top)


def known_keys_only(raw: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's stored recipe without keys this version no longer has (it was valid when written)."""
    keys = set(valid_keys())
    out = {k: v for k, v in raw.items() if k in keys}
    for section in SECTIONS:
        if isinstance(raw.get(section), dict):
            out[section] = {k: v for k, v in raw[section].items() if f"{section}.{k}" in keys}
    return out


def replace_given(cfg: Any, **values: Any) -> Any:
    """`dataclasses.replace` with the options a user gave on the command line (None: not given, keep the recipe's)."""
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if v is not None})


def recipe_from_checkpoint(payload: dict[str, Any]) -> Recipe:
    return from_dict(known_keys_only(payload["recipe"]), check_ranges=False)


def to_dict(recipe: Recipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


def differences(saved: Recipe, given: Recipe, sections: tuple[str, ...]) -> list[tuple[str, str, Any, Any]]:
    """(section, key, saved value, given value) for every key of `sections` where two recipes differ, in order:
    what --resume and init_from checks name in their errors."""
    a, b = to_dict(saved), to_dict(given)
    return [(section, key, value, b[section][key]) for section in sections for key, value in a[section].items()
            if b[section][key] != value]  # fmt: skip


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr=0.1` → (['train', 'lr'], 0.1). Values are TOML literals; bare words are strings."""
    if "=" not in text:
        raise UserError(f"--set '{text}' has no '=': write it as section.key=value, e.g. train.lr=0.1")
    key, _, literal = text.partition("=")
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {literal.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = literal.strip()
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for text in overrides:
        parts, value = parse_override(text)
        key = ".".join(parts)
        if key not in valid_keys():
            raise _unknown_key(key)
        if len(parts) == 2:
            merged.setdefault(parts[0], {})[parts[1]] = value
        else:
            merged[parts[0]] = value
    return merged


def recipe_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    """A built-in recipe's name (`textgen recipes`), or a path to a user's own TOML file.

    Text ending in `.toml` or holding a path separator is always a path; a bare name is a built-in recipe,
    else an existing file. Relative paths are taken from `relative_to` (the folder of the recipe whose
    `extends` names this one), else from the working directory. Built-ins are never looked up there.
    """
    path = Path(name_or_path)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    separators = {"/", os.sep, os.altsep} - {None}
    if not (name_or_path.endswith(".toml") or any(sep in name_or_path for sep in separators)):
        builtin = recipes_dir() / f"{name_or_path}.toml"
        if builtin.is_file():
            return builtin
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in list_recipe_files()))
            raise UserError(f"unknown recipe '{name_or_path}': available recipes are {names}")
    if not path.is_file():
        raise UserError(f"recipe file '{path}' does not exist")
    return path


def list_recipe_files() -> list[Path]:
    """The built-in recipes shipped in the package (never a `recipes/` folder in the working directory)."""
    return sorted(recipes_dir().glob("*.toml"))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"recipe '{path}' is not valid TOML: {exc}; fix the file") from None
    except UnicodeDecodeError:
        raise UserError(f"recipe '{path}' is not UTF-8 text") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def read_recipe_raw(name_or_path: str, seen: tuple[str, ...] = (), relative_to: Path | None = None) -> dict[str, Any]:
    """A recipe's TOML with `extends = "OTHER"` resolved: OTHER's keys, then this file's on top.

    OTHER is a built-in recipe's name or a path relative to this recipe's folder.
    """
    path = recipe_path(name_or_path, relative_to)
    raw = read_toml(path)
    parent = raw.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise UserError(f"recipe '{path}': extends must be a recipe name or path in quotes, got {parent!r}")
        if parent in seen:
            raise UserError(f"recipe '{path}' extends itself through {' -> '.join(seen)}: break the cycle")
        base = read_recipe_raw(parent, seen + (parent,), path.parent)
        base.pop("description", None)
        base.pop("name", None)
        raw = _merge(base, raw)
    raw.setdefault("name", path.stem)
    return raw


def load_recipe(name_or_path: str, overrides: list[str] = ()) -> Recipe:
    return from_dict(apply_overrides(read_recipe_raw(name_or_path), list(overrides)))


def dump_toml(recipe: Recipe) -> str:
    """The resolved recipe as TOML, stored beside each run so it can be re-run exactly."""

    def literal(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    data = to_dict(recipe)
    lines = [f"{k} = {literal(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section in SECTIONS:
        lines += ["", f"[{section}]"] + [f"{k} = {literal(v)}" for k, v in data[section].items()]
    return "\n".join(lines) + "\n"
