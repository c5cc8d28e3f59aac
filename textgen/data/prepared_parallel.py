"""Parallel corpora prepared once (data/prepared.py): vocabularies plus each split's id arrays and raw targets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import chain, zip_longest
from pathlib import Path

import numpy as np
import torch

from textgen.console import progress_bar, stderr_console
from textgen.data.arrays import Lines, Ragged, RaggedWriter, id_dtype, open_array
from textgen.data.corpus import absolute_corpus
from textgen.data.parallel import (
    LINES_PER_CHUNK,
    load_parallel,
    own_files,
    stream_line_chunks,
    stream_lines,
    stream_pair_chunks,
)
from textgen.data.prepared import Plan, Prepared, build, file_sha256, fingerprint, locate, read_manifest
from textgen.data.registry import fetch, lookup, sha256_of
from textgen.data.seqvocab import SPM_SAMPLE, TARGET_MULTIPLE, UNK, TargetPieces, Vocabs
from textgen.errors import UserError

SPLITS = ("train", "valid", "test")
CHUNK_IDS = 1 << 24  # ids remapped per pass when the target side is restricted


@dataclass
class ParallelArrays:
    """One prepared split: full source ids (truncation is applied when read), target ids, raw target lines."""

    src: Ragged
    tgt: Ragged
    targets: Lines

    @classmethod
    def open(cls, folder: Path, split: str) -> "ParallelArrays":
        out = cls(Ragged(folder, f"{split}.src"), Ragged(folder, f"{split}.tgt"), Lines(folder, f"{split}.tgt.text"))
        if not len(out.src) == len(out.tgt) == len(out.targets):
            raise UserError(
                f"prepared split '{folder}/{split}' has misaligned arrays: delete the folder, prepare again"
            )
        return out


class PreparedParallel(Prepared):
    @cached_property
    def vocabs(self) -> Vocabs:
        return self.read("vocab.pt", lambda path: Vocabs.from_dict(torch.load(path, weights_only=True)))

    def split(self, name: str) -> ParallelArrays:
        arrays = ParallelArrays.open(self.folder, name)
        self.checked_ids(arrays.src.ids, len(self.vocabs.src), f"{name}.src.ids.npy")
        self.checked_ids(arrays.tgt.ids, len(self.vocabs.tgt), f"{name}.tgt.ids.npy")
        return arrays


def _settings(d) -> dict:
    distilled = {"distill_targets": d.distill_targets} if d.distill_from else {}  # which targets are trained on
    return _tokenizer_settings(d) | distilled


def _tokenizer_settings(d) -> dict:
    if d.tokenizer == "spm":
        # joint: keyed as before the setting existed; targets: keyed by the padding too (folders before it had none)
        target = {} if d.target_vocab == "joint" else {"target_vocab": d.target_vocab, "padded_to": TARGET_MULTIPLE}
        return {"task": "seq2seq", "tokenizer": "spm", "vocab_size": d.vocab_size, **target}
    return {
        "task": "seq2seq",
        "tokenizer": d.tokenizer,
        "min_freq": d.min_freq,
        "max_vocab": d.max_vocab,
        "lowercase": d.lowercase,
    }


def vocab_fingerprint(vocab: dict) -> str:
    def plain(v):
        if isinstance(v, torch.Tensor):
            return v.numpy().tobytes().hex()
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return fingerprint(plain(vocab))


class _Source:
    """Where a corpus's pairs come from: the user's line-aligned files (streamed), or a registry corpus; with
    `distilled` (a teacher's outputs, tasks/distill.py) the training targets are those (mix "distilled") or the
    original pairs followed by the sources again with those (mix "both")."""

    def __init__(self, corpus: str, distilled: Path | None = None, mix: str = "distilled"):
        self.corpus, self.paths = corpus, own_files(corpus)
        self.distilled, self.mix = distilled, mix
        if self.paths is None:
            self.entry = lookup(corpus)
            if not (self.entry.pairs or self.entry.hash_split):
                raise UserError(f"corpus '{corpus}' is not a parallel corpus: use it with a language-model recipe")

    def labels(self) -> dict[str, str]:
        """The user's file behind each key of `files()`, for messages (none for a registry corpus)."""
        pairs = (self.paths or {}).items()
        out = {f"{split}.{side}": str(path) for split, pair in pairs for side, path in zip(("src", "tgt"), pair)}
        return out | ({"train.distilled": str(self.distilled)} if self.distilled else {})

    def files(self) -> dict[str, str]:
        """sha256 of every input file: of the registry's record, or of the user's files as they are now."""
        distilled = {"train.distilled": file_sha256(self.distilled)} if self.distilled else {}
        if self.paths is None:
            layout = json.dumps([self.entry.pairs, self.entry.hash_split], sort_keys=True)
            unpinned = [f for f in self.entry.files if not f.sha256]  # built locally (IWSLT14): hash what is there
            local = fetch(self.corpus) if unpinned else {}
            files = {f"{self.corpus}/{f.name}": f.sha256 or sha256_of(local[f.name]) for f in self.entry.files}
            return {**files, "layout": layout, **distilled}
        out = dict(distilled)
        for split, pair in self.paths.items():
            for side, path in zip(("src", "tgt"), pair):
                out[f"{split}.{side}"] = _user_file_sha256(path)
        return out

    @cached_property
    def _registry_splits(self):
        return load_parallel(self.corpus).splits

    def splits(self) -> list[str]:
        return list(self.paths) if self.paths is not None else [s for s in SPLITS if s in self._registry_splits]

    def _original_chunks(self, split: str) -> Iterable[tuple[list[str], list[str]]]:
        if self.paths is not None:
            return stream_pair_chunks(*self.paths[split])
        part, n = self._registry_splits[split], LINES_PER_CHUNK
        return ((part.sources[i : i + n], part.targets[i : i + n]) for i in range(0, len(part.sources), n))

    def _distilled_chunks(self) -> Iterable[tuple[list[str], list[str]]]:
        """The training sources with the distilled targets, chunk for chunk (both are read LINES_PER_CHUNK lines
        at a time); a file of another length is an error."""
        count = 0
        for pair, targets in zip_longest(self._original_chunks("train"), stream_line_chunks(self.distilled)):
            sources = pair[0] if pair else None
            if sources is None or targets is None or len(sources) != len(targets):
                raise UserError(
                    f"'{self.distilled}' does not hold one line per training source of '{self.corpus}' (it differs "
                    f"after line {count}): delete its folder to decode the teachers' outputs again"
                )
            count += len(sources)
            yield sources, targets

    def pair_chunks(self, split: str) -> Iterable[tuple[list[str], list[str]]]:
        """(sources, targets) lists of up to LINES_PER_CHUNK pairs, in corpus order."""
        if split != "train" or self.distilled is None:
            return self._original_chunks(split)
        if self.mix == "distilled":
            return self._distilled_chunks()
        return chain(self._original_chunks(split), self._distilled_chunks())

    def count(self, split: str) -> int:
        """The number of pairs in a split (a pass over its source file, lines split in C)."""
        if self.paths is not None:
            n = sum(map(len, stream_line_chunks(self.paths[split][0])))
        else:
            n = len(self._registry_splits[split].sources)
        return 2 * n if split == "train" and self.distilled is not None and self.mix == "both" else n

    def side(self, split: str, index: int):
        """A fresh pass over one side of a split (for vocabulary training)."""
        if split == "train" and self.distilled is not None and index == 1:  # the sources are read once either way
            return lambda: (line for chunk in self.pair_chunks(split) for line in chunk[1])
        if self.paths is not None:
            return lambda: stream_lines(self.paths[split][index])
        part = self._registry_splits[split]
        return lambda: iter(part.sources if index == 0 else part.targets)


def training_sources_key(corpus: str) -> dict[str, str]:
    """sha256 of what a corpus's training sources come from (a registry corpus's files, or the user's training
    source file; sha256s remembered by size and time), to key outputs made from them (tasks/distill.py)."""
    paths = own_files(corpus)
    if paths is None:
        return _Source(corpus).files()  # the registry's pinned sha256s (files built locally are hashed)
    return {"train.src": _user_file_sha256(paths["train"][0])}


def _user_file_sha256(path: Path) -> str:
    """file_sha256 of a file the user named, refused with a one-line error when it is not there."""
    if not path.is_file():
        raise UserError(f"file '{path}' does not exist: check the path")
    return file_sha256(path)


def _write_split(
    folder: Path, split: str, pair_chunks: Iterable[tuple[list[str], list[str]]], vocabs: Vocabs, pairs: int
) -> dict:
    """Encode one split's `pairs` pairs into its arrays, with a progress bar on a terminal."""
    dtype = id_dtype(max(len(vocabs.src), len(vocabs.tgt)))
    src, tgt = RaggedWriter(folder, f"{split}.src", dtype), RaggedWriter(folder, f"{split}.tgt", dtype)
    text = RaggedWriter(folder, f"{split}.tgt.text", np.uint8)
    with progress_bar(f"encode {split}", pairs) as advance:
        for sources, targets in pair_chunks:
            src.extend([ids or [UNK] for ids in vocabs.src.encode_many(sources)])  # an empty source gets one token
            tgt.extend(vocabs.tgt.encode_many(targets))
            text.extend_lines(targets)
            advance(len(sources))
    for writer in (src, tgt, text):
        writer.finish()
    return {"pairs": src.offsets.count - 1, "source_tokens": src.ids.count, "target_tokens": tgt.ids.count}


def _target_pieces(folder: Path, vocabs: Vocabs) -> Vocabs:
    """Restrict the target side to the pieces its training split uses and rewrite that split's target ids
    (written with the joint vocabulary) in the smaller id space, a chunk at a time."""
    ids = open_array(folder / "train.tgt.ids.npy", mode="r+")
    counts = np.zeros(len(vocabs.src), dtype=np.int64)
    for start in range(0, len(ids), CHUNK_IDS):
        counts += np.bincount(ids[start : start + CHUNK_IDS], minlength=len(counts))
    target = TargetPieces.seen(vocabs.src, counts)
    for start in range(0, len(ids), CHUNK_IDS):
        ids[start : start + CHUNK_IDS] = target.lut[ids[start : start + CHUNK_IDS]]
    ids.flush()
    return Vocabs(vocabs.src, target)


def prepare_parallel(
    recipe,
    vocab: dict | None = None,
    explicit: Path | None = None,
    dest: Path | None = None,
    distilled: Path | None = None,
):
    """The recipe's corpus prepared with its tokenizer (or with `vocab`, a checkpoint's): reused when a
    folder for exactly these inputs exists, else built now. `explicit` names a folder to use (checked);
    `dest` builds into a chosen folder instead of the cache; `distilled`: the teachers' outputs for the
    training sources, which a recipe with data.distill_from needs (tasks/distill.py makes them)."""
    d = recipe.data
    if bool(d.distill_from) != (distilled is not None):
        raise ValueError("prepare_parallel: give the distilled targets exactly when data.distill_from is set")
    source = _Source(d.corpus, distilled, d.distill_targets)
    base = Plan(d.corpus, {"files": source.files(), "settings": _settings(d)}, source.labels())
    given = vocab_fingerprint(vocab) if vocab is not None else None
    plans = [base] if given is None else [base, Plan(d.corpus, {**base.inputs, "vocab": given}, base.paths)]
    for plan in plans:
        folder = locate(plan, explicit) if dest is None else None
        if folder is not None:
            manifest = read_manifest(folder)
            if given is None or manifest["vocab_sha256"] == given:
                return PreparedParallel(folder, manifest)
            if explicit is not None:
                raise UserError(
                    f"prepared folder '{explicit}' has another vocabulary than the checkpoint's: drop --prepared "
                    "to let textgen prepare the corpus with the checkpoint's vocabulary"
                )
    plan = plans[-1]

    def write(tmp: Path) -> dict:
        splits = source.splits()
        if "train" not in splits:
            raise UserError(f"corpus '{d.corpus}' has no train split: train on a corpus that has one")
        pairs = {split: source.count(split) for split in splits}  # for the progress bars, and spm's sample
        lines = 0
        if vocab is not None:
            vocabs = Vocabs.from_dict(vocab)
        else:
            lines = pairs["train"] * 2
            with stderr_console().status(f"building the vocabulary from {lines:,} training lines"):
                vocabs = Vocabs.build(d, source.side("train", 0), source.side("train", 1), lines)
        encode_start = time.perf_counter()
        counts = {"train": _write_split(tmp, "train", source.pair_chunks("train"), vocabs, pairs["train"])}
        if vocab is None and d.tokenizer == "spm" and d.target_vocab == "targets":
            vocabs = _target_pieces(tmp, vocabs)
        for split in [s for s in splits if s != "train"]:
            counts[split] = _write_split(tmp, split, source.pair_chunks(split), vocabs, pairs[split])
        encode_seconds = time.perf_counter() - encode_start
        vocab_dict = vocabs.to_dict()
        torch.save(vocab_dict, tmp / "vocab.pt")
        sampled = d.tokenizer == "spm" and vocab is None and lines > SPM_SAMPLE
        return {
            "corpus": absolute_corpus(d.corpus, "seq2seq"),  # `train --prepared` takes it from here, in any folder
            "vocab_sha256": vocab_fingerprint(vocab_dict),
            "vocab_size": [len(vocabs.src), len(vocabs.tgt)],
            "tokenizer_training": "given (a checkpoint's)"
            if vocab is not None
            else (
                f"sentencepiece on a random sample of {SPM_SAMPLE:,} of {lines:,} lines (seed 1)"
                if sampled
                else "on every training line"
            ),
            "splits": counts,
            "encode_seconds": round(encode_seconds, 2),  # reading, tokenizing and writing, after the vocabulary
        }

    folder = build(plan, write, dest)
    return PreparedParallel(folder, read_manifest(folder))
