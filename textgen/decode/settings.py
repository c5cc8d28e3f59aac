"""The numeric options of decoding and sampling, each with its declared type and range, checked in one place.

`textgen decode`, `sample` and `eval`, the Python API (Translator.translate, LanguageModel.sample) and through
it the server all call `check`, so a value is accepted or refused the same way everywhere, with a message that
gives the range. Options that are also [decode] recipe keys take the recipe's ranges (config.RANGES), so a
value means the same on the command line and in a recipe. NaN and infinite numbers, booleans given for
integers, and sizes no decoder needs (a beam of 100,000) are refused before any work starts."""

from __future__ import annotations

import numbers
from dataclasses import fields

from textgen.config import RANGES, DecodeConfig, Range
from textgen.errors import UserError

MAX_OUTPUT_TOKENS = 512  # the longest output search or sampling produces (decode/search.py max_lengths)

# option -> (int or float, its range)
OPTIONS: dict[str, tuple[type, Range]] = {
    # seq2seq: the [decode] recipe keys (beam, nbest, lenpen, max_len_a, max_len_b, no_repeat_ngram, batch_size)
    **{
        f.name: (type(f.default), RANGES[f"decode.{f.name}"])
        for f in fields(DecodeConfig)
        if f"decode.{f.name}" in RANGES
    },
    "temperature": (float, Range(0, 100)),
    "seed": (int, Range(0, 2**63 - 1)),  # what torch.Generator.manual_seed and the keyed streams take
    "mbr": (int, Range(1, 1024)),
    "mbr_beam": (int, Range(0, 1024)),
    "mbr_epsilon": (float, Range(0, 1, below=True)),
    "mbr_top_p": (float, Range(0, 1, above=True)),
    # language-model sampling
    "length": (int, Range(0)),
    "top_k": (int, Range(0)),
    "top_p": (float, Range(0, 1, above=True)),
}


def _admits(kind: type, allowed: Range, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if kind is int else numbers.Real):
        return False
    return value in allowed  # finite and within the bounds


def check(**values) -> None:
    """Refuse the first value of the wrong type or outside its range, naming the option as the CLI spells it
    (None: not given, the default applies)."""
    for name, value in values.items():
        kind, allowed = OPTIONS[name]
        if value is not None and not _admits(kind, allowed, value):
            raise UserError(f"--{name.replace('_', '-')} must be {allowed.describe(kind is int)}, got {value!r}")


def check_decode_config(cfg: DecodeConfig) -> None:
    """The numeric keys of a DecodeConfig (a recipe's [decode] with any overrides), against the same ranges."""
    check(**{f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name in OPTIONS})
    if cfg.max_len_a == 0 and cfg.max_len_b == 0:
        raise UserError("--max-len-a and --max-len-b are both 0: every output would be empty; raise one of them")
