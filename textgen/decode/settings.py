"""The options of decoding and sampling, each with its declared type and range, checked in one place.

`textgen decode`, `sample` and `eval`, the Python API (Translator.translate, LanguageModel.sample) and through
it the server all call `check`, and seq2seq decoding resolves its options onto the recipe's [decode] with
`resolve`, so a value is accepted or refused the same way everywhere, with a message that gives the range.
Options that are also [decode] recipe keys (`--mbr-epsilon` is decode.mbr.epsilon) take the recipe's ranges
(config.RANGES), so a value means the same on the command line and in a recipe. NaN and infinite numbers,
booleans given for integers, and sizes no decoder needs (a beam of 100,000) are refused before any work starts."""

from __future__ import annotations

import dataclasses
import numbers

import torch

from textgen.config import CHOICES, RANGES, DecodeConfig, Range, leaf_types, replace_given
from textgen.errors import UserError
from textgen.precision import check_precision

MAX_OUTPUT_TOKENS = 512  # the longest output search or sampling produces (decode/search.py max_lengths)


def _option(key: str) -> str:
    """The option name of a [decode] recipe key: decode.beam -> beam, decode.mbr.top_p -> mbr_top_p."""
    return key.removeprefix("decode.").replace(".", "_")


_DECODE_KEYS = {key: kind for key, kind in leaf_types(DecodeConfig, "decode.").items() if key in RANGES}

# option -> (int or float, its range)
OPTIONS: dict[str, tuple[type, Range]] = {
    # seq2seq: the numeric [decode] and [decode.mbr] recipe keys
    **{_option(key): (kind, RANGES[key]) for key, kind in _DECODE_KEYS.items()},
    # --mbr N asks for MBR decoding over N candidates: 0 (the recipe's "off") is no way to ask for it
    "mbr": (int, Range(1, RANGES["decode.mbr.samples"].high)),
    "seed": (int, RANGES["decode.mbr.seed"]),  # what torch.Generator.manual_seed and the keyed streams take
    # language-model sampling
    "length": (int, Range(0)),
    "top_k": (int, Range(0)),
    "top_p": (float, Range(0, 1, above=True)),
}
MBR_OPTIONS = ("mbr_sampling", "mbr_utility", "mbr_epsilon", "mbr_top_p", "mbr_beam")  # decode.mbr.<name>


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
    """A DecodeConfig (a recipe's [decode] with any options on top): its numbers against the same ranges, its
    choices, and the combinations no decode can run."""
    values = dataclasses.asdict(cfg)
    for key in _DECODE_KEYS:
        section, _, name = key.removeprefix("decode.").rpartition(".")
        value = (values[section] if section else values)[name]
        if key == "decode.mbr.samples":  # checked as --mbr N, where 0 (off) is no value
            check(mbr=value or None)
        else:
            check(**{_option(key): value})
    for name in ("sampling", "utility"):
        value, allowed = getattr(cfg.mbr, name), CHOICES[f"decode.mbr.{name}"]
        if value not in allowed:
            raise UserError(f"unknown --mbr-{name} '{value}': choose from {', '.join(allowed)}")
    if cfg.max_len_a == 0 and cfg.max_len_b == 0:
        raise UserError("--max-len-a and --max-len-b are both 0: every output would be empty; raise one of them")
    if cfg.mbr.samples and cfg.temperature == 0:
        raise UserError(f"--mbr samples its candidates: --temperature must be > 0, got {cfg.temperature}")


def resolve(
    base: DecodeConfig,
    device: torch.device | None = None,
    sample: bool = False,
    seed: int | None = None,
    mbr: int | None = None,
    model: torch.nn.Module | None = None,
    **given,
) -> DecodeConfig:
    """The DecodeConfig a seq2seq decode runs with: `base` (the recipe's [decode]) with the options given on
    top (None: not given, the recipe's value applies), every value and combination checked.

    `given`: DecodeConfig keys (beam, nbest, lenpen, temperature, ...) and the MBR options mbr_sampling,
    mbr_utility, mbr_epsilon, mbr_top_p, mbr_beam (decode.mbr.*). MBR decodes when `mbr` is given (its
    sample count) or the recipe sets decode.mbr.samples and neither a beam nor sampling is asked for; then
    `seed`, if given, is MBR's. Otherwise the result has MBR off (decode.mbr.samples 0). The precision is
    checked for `device` and `model` (precision.check_precision), where given."""
    if not isinstance(sample, bool):
        raise UserError(f"sample must be True or False, got {sample!r}")
    mbr_given = {name.removeprefix("mbr_"): given.pop(name) for name in MBR_OPTIONS if name in given}
    unknown = set(given) - {f.name for f in dataclasses.fields(DecodeConfig)}
    if unknown:
        raise UserError(f"unknown decode setting(s) {', '.join(sorted(unknown))}: see DecodeConfig")
    numeric = {**given, **{f"mbr_{k}": v for k, v in mbr_given.items()}, "seed": seed, "mbr": mbr}
    check(**{k: v for k, v in numeric.items() if k in OPTIONS})
    on = mbr is not None or (base.mbr.samples > 0 and given.get("beam") is None and not sample)
    if on and (given.get("beam") is not None or sample or given.get("nbest") not in (None, 1)):
        raise UserError(
            "--mbr samples its own candidates and returns one output per source: leave out --beam, --sample and --nbest"
        )
    if not on and mbr_given.get("beam"):
        raise UserError("--mbr-beam adds candidates to MBR decoding: give --mbr N too")
    if on:
        mbr_cfg = replace_given(base.mbr, samples=mbr, seed=seed, **mbr_given)
    else:
        mbr_cfg = dataclasses.replace(base.mbr, samples=0)
    cfg = replace_given(base, **given, mbr=mbr_cfg)
    if sample and cfg.nbest != 1:
        raise UserError("sampling draws one output per source: leave nbest at 1 (or search with a beam)")
    if not (sample or on) and cfg.nbest > cfg.beam:
        raise UserError(f"nbest {cfg.nbest} is larger than beam {cfg.beam}: raise the beam")
    check_decode_config(cfg)
    if device is not None:
        check_precision(cfg.precision, device, model)
    return cfg
