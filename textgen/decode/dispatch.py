"""The one decode entry point: MBR, sampling, beam search or greedy, picked by a resolved DecodeConfig.

`textgen decode` and the server (through Translator.translate) and `textgen eval` all call `decode_sources` with the
DecodeConfig that settings.resolve made of the recipe's [decode] and the options given, so each mode is
chosen, and each default applied, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textgen.config import DecodeConfig
from textgen.decode.driver import decode_ids
from textgen.decode.mbr import MbrChoice, mbr_decode, progress_total


@dataclass(frozen=True)
class Decoded:
    """One source's outputs: its n best (text, score), best first (MBR: the chosen candidate and its expected
    utility, with `choice` saying what it was chosen from)."""

    nbest: list[tuple[str, float]]
    choice: MbrChoice | None = None

    @property
    def text(self) -> str:
        """The best output ("" when a search finished no hypothesis)."""
        return self.nbest[0][0] if self.nbest else ""


def decode_sources(
    model,
    decode_text: Callable[[list[int]], str],
    sources: list[list[int]],
    cfg: DecodeConfig,
    sample: bool = False,
    seed: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> list[Decoded]:
    """Decode encoded sources, in input order: by MBR when cfg.mbr.samples > 0, else one sample per source at
    cfg.temperature when `sample` (seeded by `seed`: a source's sample depends on it and the source alone;
    None: a drawn seed), else beam search of width cfg.beam (1: greedy). `advance` counts work_items."""
    if cfg.mbr.samples:
        chosen = mbr_decode(model, decode_text, sources, cfg, advance)
        return [Decoded([(c.text, c.expected[c.index])], c) for c in chosen]
    results = decode_ids(model, sources, cfg, sample=sample, temperature=cfg.temperature, seed=seed, advance=advance)
    return [Decoded([(decode_text(t), s) for t, s in zip(toks, scores)]) for toks, scores in results]


def work_items(cfg: DecodeConfig, sources: int) -> int:
    """The items `decode_sources` reports to `advance` for this many sources (a progress bar's total)."""
    return progress_total(sources, cfg.mbr.beam) if cfg.mbr.samples else sources
