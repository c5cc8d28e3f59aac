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
    # seq2seq: sequence-level knowledge distillation (tasks/distill.py): train on the training sources with these
    # teacher checkpoints' outputs as targets ("a.pt" or an ensemble "a.pt,b.pt"; decoded once, cached)
    distill_from: str = ""
    distill_targets: str = (
        "distilled"  # with distill_from: distilled (the teachers' outputs) | both (and the originals)
    )


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "recurrent"  # textgen/models MODELS: recurrent (model.cell; seq2seq: bi-LSTM + attention), transformer
    cell: str = "lstm"  # rnn (Elman, tanh) | lstm | gru
    layers: int = 2
    hidden: int = 512
    embed: int = 0  # 0: same as hidden
    dropout: float = 0.0
    tie_weights: bool = False
    init_range: float = 0.0  # >0: uniform(-r, r) init of every weight (Zaremba et al.)
    attention: str = "general"  # seq2seq: general | dot (Luong) | bahdanau (additive)
    input_feeding: bool = False  # seq2seq: feed the attentional vector to the next step (slower: no fused LSTM)
    share_embeddings: bool = False  # seq2seq: one embedding table for source and target (needs a joint vocabulary)
    heads: int = 4  # transformer: attention heads (model.hidden must be a multiple)
    ffn: int = 0  # transformer: feed-forward width (0: 4 x hidden)
    context: int = 0  # transformer LM: tokens it attends to, its training window (0: train.bptt); past it, re-reads


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
    keep_checkpoints: int = 0  # >0: the weights at each of the last N validations, RUN_DIR/checkpoint-STEP.pt
    max_tokens: int = 0  # seq2seq: padded tokens per batch (token-budget batches of similar length)
    label_smoothing: float = 0.0
    # seq2seq, xent objective: each teacher-forced target input after BOS becomes UNK with this probability
    # (target-side word dropout), so that the decoder cannot predict from its own prefix alone and must read the source
    word_dropout: float = 0.0
    valid_metric: str = "loss"  # seq2seq: loss | bleu4 | rouge2: picks the best checkpoint
    valid_subset: int = 0  # seq2seq: decode this many validation sentences for the metric (0: all)
    valid_beam: int = 1  # seq2seq: ... with a beam this wide (1: greedy): pick by the search you will decode with
    log_every: int = 50
    threads: int = 0  # torch intra-op threads (0: torch default)
    tensorboard: bool = False  # also log metrics to RUN_DIR/tensorboard (needs the tensorboard package)
    # fp32 | bf16 | fp16: autocast, weights stay fp32; bf16 ~1.5x faster on CPUs with AVX512-BF16/AMX;
    # fp16: CUDA only, loss-scaled
    precision: str = "fp32"


@dataclass(frozen=True)
class DadConfig:
    """DAD / scheduled sampling (objectives/dad.py): the [objective.dad] table. p is the probability of feeding
    the model's own prediction, growing over training."""

    schedule: str = "linear"  # linear | inverse_sigmoid
    max_p: float = 0.25  # linear: p rises from 0 to this over ramp_epochs
    ramp_epochs: float = 10.0
    # inverse sigmoid (Bengio et al.), k counted in updates: p = 1 - k / (k + exp(update / k)), 1/2 at k ln k updates
    k_updates: float = 1000.0
    sample: bool = False  # feed a sample instead of the argmax


@dataclass(frozen=True)
class E2EConfig:
    """E2E (objectives/e2e.py): the [objective.e2e] table; it anneals on [objective.mixer]'s schedule."""

    k: int = 10  # feed the renormalised top-k softmax mixture of embeddings


@dataclass(frozen=True)
class MixerConfig:
    """MIXER, REINFORCE and SCST (objectives/mixer.py): the [objective.mixer] table. The schedule (Algorithm 1):
    s = T for xent_epochs, then T - delta every epochs_per_stage epochs, never below min_s."""

    T: int = 25
    delta: int = 3
    xent_epochs: float = 25.0
    epochs_per_stage: float = 5.0  # may be fractional: short fine-tunes anneal within an epoch
    min_s: int = 0
    xent_weight: float = 0.5  # weight of the XENT part once s < T (the REINFORCE part gets 1 - this)
    # bleu (sentence BLEU, +1 smoothing) | bleu-sampled (the paper's: only n-grams with a sampled token count)
    # | rouge2 | rouge1 | rouge-mix
    reward: str = "bleu"
    # learned (one linear regressor on h_t) | learned-per-step (one per decoder step, as the paper's code)
    # | loo (the mean reward of the source's other samples) | none
    baseline: str = "learned"
    baseline_lr: float = 1e-3  # the regressor's own fixed lr (not decayed with the model's)
    samples: int = 1  # rollouts per source and update (loo needs >= 2; Kool et al. 2019 use 4)


@dataclass(frozen=True)
class MrtConfig:
    """MRT (objectives/mrt.py; Shen et al. 2016, Edunov et al. 2018): the [objective.mrt] table. Expected cost
    1 - reward over a candidate set, mixed with XENT."""

    candidates: int = 8  # samples per source, drawn without gradient and deduplicated (0: beam only)
    beam: int = 0  # also the n-best of a beam search of this width (Edunov et al.'s candidates; 0: samples only)
    alpha: float = 1.0  # sharpness: q(y) ~ p(y|x)^alpha renormalised over the candidates (Shen et al.: 5e-3)
    reference: bool = False  # add the reference to every candidate set
    xent_weight: float = 0.5  # weight of the XENT part (the risk gets 1 - this)
    reward: str = "bleu"  # bleu | rouge2 | rouge1 | rouge-mix: the cost is 1 - this (not bleu-sampled: it scores
    # a continuation, not a whole candidate)


@dataclass(frozen=True)
class RankConfig:
    """Ranking (objectives/rank.py; BRIO, Liu et al. 2022): the [objective.rank] table. The model's
    length-normalised log-probabilities of its own candidates must follow the candidates' reward order, apart
    by margins; mixed with XENT, which keeps the model a generator. Defaults: BRIO's margin and weights."""

    candidates: int = 0  # samples per source, drawn without gradient and deduplicated (0: beam only)
    beam: int = 8  # the n-best of a beam search of this width (0: samples only)
    margin: float = 0.001  # candidates i places apart in reward order must score at least i * margin apart
    length_penalty: float = 1.0  # a candidate scores log p(y|x) / length^this (tokens and EOS)
    weight: float = 10.0  # the ranking loss (per sentence) beside ...
    xent_weight: float = 0.1  # ... the token-level XENT (label-smoothed as the recipe's train.label_smoothing)
    reward: str = "bleu"  # bleu | rouge2 | rouge1 | rouge-mix: the order the candidates must follow


@dataclass(frozen=True)
class ObjectiveConfig:
    """[objective]: which objective trains (objectives/__init__.py OBJECTIVES) and what several share; each
    objective's own settings are its table ([objective.mixer])."""

    name: str = "xent"  # xent | dad | e2e | reinforce | mixer | scst | mrt | rank
    sample_temperature: float = 1.0  # MIXER/REINFORCE/SCST rollouts, MRT's and rank's sampled candidates
    dad: DadConfig = field(default_factory=DadConfig)
    e2e: E2EConfig = field(default_factory=E2EConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    mrt: MrtConfig = field(default_factory=MrtConfig)
    rank: RankConfig = field(default_factory=RankConfig)


# Flat [objective] keys of earlier versions and where each lives now: a recipe or --set naming one is an error
# that says so, and a checkpoint's stored recipe is read through it (MOVED_TO[key] lists every new home).
MOVED_TO = {
    **{f"dad_{k}": (f"dad.{k}",) for k in ("schedule", "max_p", "ramp_epochs", "k_updates", "sample")},
    "e2e_k": ("e2e.k",),
    **{f"mixer_{k}": (f"mixer.{k}",) for k in ("T", "delta", "xent_epochs", "epochs_per_stage", "min_s")},
    **{k: (f"mixer.{k}",) for k in ("baseline", "baseline_lr", "samples")},
    **{k: (f"mixer.{k}", f"mrt.{k}") for k in ("xent_weight", "reward")},
    **{f"mrt_{k}": (f"mrt.{k}",) for k in ("candidates", "beam", "alpha", "reference")},
}


@dataclass(frozen=True)
class MbrConfig:
    """Minimum Bayes risk decoding (textgen/decode/mbr.py): the [decode.mbr] table."""

    samples: int = 0  # candidates drawn per source (0: off, decode by search or sampling)
    sampling: str = "epsilon"  # epsilon | ancestral | top_p: how candidates are drawn (at decode.temperature)
    utility: str = "bleu"  # bleu | chrf | rouge1 | rouge2 | rougeL: what the chosen candidate maximises
    epsilon: float = 0.02  # epsilon sampling: drop tokens with p below this (Freitag et al. 2023)
    top_p: float = 0.9  # top_p sampling: the nucleus mass
    beam: int = 0  # also beam search's K best outputs as candidates, scored against the draws (0: draws only)
    seed: int = 0  # sample j of every source draws from a key derived from (seed, j): repeatable by default


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = 5
    nbest: int = 1
    lenpen: float = 1.0
    max_len_a: float = 1.5
    max_len_b: int = 10
    no_repeat_ngram: int = 0
    batch_size: int = 64  # sentences decoded together
    temperature: float = 1.0  # sampling (--sample) and MBR's candidates: 1 is the model's own distribution
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA) (autocast while decoding; scores are accumulated in fp32)
    mbr: MbrConfig = field(default_factory=MbrConfig)


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
    "data.distill_targets": ("distilled", "both"),
    "train.valid_metric": ("loss", "bleu4", "rouge2"),
    "objective.name": ("xent", "dad", "e2e", "reinforce", "mixer", "scst", "mrt", "rank"),
    "objective.dad.schedule": ("linear", "inverse_sigmoid"),
    "objective.mixer.reward": ("bleu", "bleu-sampled", "rouge2", "rouge1", "rouge-mix"),
    "objective.mixer.baseline": ("learned", "learned-per-step", "loo", "none"),
    "objective.mrt.reward": ("bleu", "bleu-sampled", "rouge2", "rouge1", "rouge-mix"),
    "objective.rank.reward": ("bleu", "rouge2", "rouge1", "rouge-mix"),
    "data.level": ("char", "word"),
    "model.arch": ("recurrent", "transformer"),  # textgen/models MODELS (tests keep them equal)
    "model.cell": ("rnn", "lstm", "gru"),
    "model.attention": ("general", "dot", "bahdanau"),
    "train.optimizer": ("sgd", "adam", "adamw", "rmsprop"),
    "train.loss_norm": ("tokens", "batch"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "decode.precision": ("fp32", "bf16", "fp16"),
    "decode.mbr.sampling": ("epsilon", "ancestral", "top_p"),
    "decode.mbr.utility": ("bleu", "chrf", "rouge1", "rouge2", "rougeL"),  # decode/mbr.py UTILITIES
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
    "model.heads": Range(1, 1024),
    "model.ffn": Range(0, 1 << 18),
    "model.context": Range(0, 1 << 20),
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
    "train.keep_checkpoints": NONNEGATIVE,
    "train.max_tokens": Range(0, 1 << 24),
    "train.label_smoothing": BELOW_1,
    "train.word_dropout": BELOW_1,
    "train.valid_subset": NONNEGATIVE,
    "train.valid_beam": Range(1, 1024),
    "train.log_every": AT_LEAST_1,
    "train.threads": Range(0, 1024),
    "objective.sample_temperature": POSITIVE,
    "objective.dad.max_p": PROBABILITY,
    "objective.dad.ramp_epochs": NONNEGATIVE,
    "objective.dad.k_updates": AT_LEAST_1,
    "objective.e2e.k": WIDTH,
    "objective.mixer.T": AT_LEAST_1,
    "objective.mixer.delta": NONNEGATIVE,
    "objective.mixer.xent_epochs": NONNEGATIVE,
    "objective.mixer.epochs_per_stage": POSITIVE,
    "objective.mixer.min_s": NONNEGATIVE,
    "objective.mixer.xent_weight": PROBABILITY,
    "objective.mixer.baseline_lr": POSITIVE,
    "objective.mixer.samples": Range(1, 1024),
    "objective.mrt.candidates": Range(0, 1024),
    "objective.mrt.beam": Range(0, 1024),
    "objective.mrt.alpha": POSITIVE,
    "objective.mrt.xent_weight": PROBABILITY,
    "objective.rank.candidates": Range(0, 1024),
    "objective.rank.beam": Range(0, 1024),
    "objective.rank.margin": NONNEGATIVE,
    "objective.rank.length_penalty": Range(0, 10),
    "objective.rank.weight": NONNEGATIVE,
    "objective.rank.xent_weight": NONNEGATIVE,
    "decode.beam": Range(1, 1024),
    "decode.nbest": Range(1, 1024),
    "decode.lenpen": Range(0, 10),
    "decode.max_len_a": Range(0, 100),
    "decode.max_len_b": Range(0, 1 << 16),
    "decode.no_repeat_ngram": NONNEGATIVE,
    "decode.batch_size": SIZE,
    "decode.temperature": Range(0, 100),
    "decode.mbr.samples": Range(0, 1024),
    "decode.mbr.epsilon": BELOW_1,
    "decode.mbr.top_p": Range(0, 1, above=True),
    "decode.mbr.beam": Range(0, 1024),
    "decode.mbr.seed": Range(0, 2**63 - 1),  # what torch.Generator.manual_seed and the keyed streams take
}


def leaf_types(cls: type = Recipe, prefix: str = "") -> dict[str, type]:
    """Every settable key (dotted: `decode.mbr.samples`) and its type; a nested dataclass is a table of keys."""
    out: dict[str, type] = {}
    for name, kind in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(kind):
            out.update(leaf_types(kind, f"{prefix}{name}."))
        else:
            out[prefix + name] = kind
    return out


def valid_keys() -> list[str]:
    return list(leaf_types())


def _unknown_key(key: str) -> UserError:
    section, _, old = key.partition(".")
    if section == "objective" and old in MOVED_TO:
        return UserError(f"{key} moved: use {' or '.join(f'objective.{new}' for new in MOVED_TO[old])}")
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
    return _table(Recipe, raw, "", check_ranges)


def _table(cls: type, raw: dict[str, Any], prefix: str, check_ranges: bool) -> Any:
    """`cls` built from one TOML table (prefix: its dotted name and a dot); nested dataclasses are sub-tables."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = prefix + key
        if key not in hints:
            raise _unknown_key(name)
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise UserError(f"recipe key '{name}' must be a [{name}] table")
            values[key] = _table(hints[key], value, name + ".", check_ranges)
        else:
            values[key] = _coerce(name, value, hints[key], check_ranges)
    return cls(**values)


def known_keys_only(raw: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's stored recipe in this version's keys: flat [objective] keys moved to their tables
    (MOVED_TO), keys this version no longer has dropped (it was valid when written)."""
    keys = set(valid_keys())
    if isinstance(raw.get("objective"), dict):
        objective = _merge({}, raw["objective"])
        for old, homes in MOVED_TO.items():
            if old in objective:  # a key shared then (reward) goes to the table of the objective that ran
                new = next((h for h in homes if h.startswith(f"{objective.get('name')}.")), homes[0])
                table, _, name = new.partition(".")
                objective.setdefault(table, {}).setdefault(name, objective.pop(old))
        raw = {**raw, "objective": objective}

    def known(table: dict[str, Any], prefix: str) -> dict[str, Any]:
        out = {}
        for key, value in table.items():
            name = prefix + key
            if isinstance(value, dict) and any(k.startswith(name + ".") for k in keys):
                out[key] = known(value, name + ".")
            elif name in keys:
                out[key] = value
        return out

    return known(raw, "")


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

    def flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """A section's keys with its sub-tables' keys dotted in (`mixer.T`)."""
        out: dict[str, Any] = {}
        for key, value in table.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
        return out

    a, b = to_dict(saved), to_dict(given)
    out = []
    for section in sections:
        ours, theirs = flat(a[section]), flat(b[section])
        out += [(section, key, value, theirs[key]) for key, value in ours.items() if theirs[key] != value]
    return out


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
    merged = _merge({}, raw)
    for text in overrides:
        parts, value = parse_override(text)
        key = ".".join(parts)
        if key not in valid_keys():
            raise _unknown_key(key)
        table = merged
        for part in parts[:-1]:
            table = table.setdefault(part, {})
        table[parts[-1]] = value
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
    """`top` over `base`, table by table (a child recipe's [decode.mbr] keeps the parent's other MBR keys)."""
    out = {k: _merge({}, v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in top.items():
        if isinstance(value, dict):
            out[key] = _merge(out[key] if isinstance(out.get(key), dict) else {}, value)
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

    def table(values: dict[str, Any], name: str) -> list[str]:
        """A table's keys, then its sub-tables (TOML puts a table's own keys before any sub-table)."""
        lines = [f"{k} = {literal(v)}" for k, v in values.items() if not isinstance(v, dict)]
        for k, v in values.items():
            if isinstance(v, dict):
                lines += ["", f"[{name}{k}]"] + table(v, f"{name}{k}.")
        return lines

    return "\n".join(table(to_dict(recipe), "")) + "\n"
