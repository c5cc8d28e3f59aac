"""Seq2seq vocabularies with fixed special ids: sentencepiece subwords or whitespace words.

Both live in the checkpoint (the sentencepiece model as bytes), so decoding needs no corpus.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
import torch

from textgen.data.vocab import SymbolTable
from textgen.errors import UserError

if TYPE_CHECKING:
    from textgen.config import DataConfig

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
SPM_SAMPLE = 2_000_000  # sentencepiece trains on every line up to this many, on a random sample of this many above


def _spm_failure(message: str, vocab_size: int) -> str:
    """sentencepiece's internal error text as a one-line message saying what to change."""
    small = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    if small:
        return (
            f"data.vocab_size = {vocab_size} is below the {small.group(1)} pieces this corpus needs (each distinct "
            f"character and {len(SPECIALS)} special pieces): set data.vocab_size={small.group(1)} or more"
        )
    if "sentences_.empty()" in message:
        return "the training text is empty: sentencepiece needs at least one non-empty line"
    detail = message.strip().splitlines()[0] if message.strip() else "no detail"
    return f"sentencepiece could not build a vocabulary from this corpus ({detail}): check the training files"


@dataclass(frozen=True)
class WordVocab(SymbolTable):
    """Whitespace tokens (optionally lowercased), words below `min_freq` → <unk> (Ranzato et al.: 3)."""

    lowercase: bool = False

    @classmethod
    def build(cls, lines: Iterable[str], min_freq: int = 1, max_size: int = 0, lowercase: bool = False) -> "WordVocab":
        counts = Counter(w for line in lines for w in (line.lower() if lowercase else line).split())
        kept = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in SPECIALS), key=lambda w: (-counts[w], w)
        )
        if max_size:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls((*SPECIALS, *kept), lowercase)

    def words(self, line: str) -> list[str]:
        return (line.lower() if self.lowercase else line).split()

    def encode(self, line: str) -> list[int]:
        index = self.index
        return [index.get(w, UNK) for w in self.words(line)]

    def normalize(self, line: str) -> str:
        """The text as this vocabulary reads it (lowercased if so built, single spaces): decoded outputs come in
        this form, so a reference compared with them must be too. Words outside the vocabulary stay words."""
        return " ".join(self.words(line))

    def encode_many(self, lines: list[str]) -> list[list[int]]:
        return [self.encode(line) for line in lines]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.symbols[i] for i in ids if i > EOS or i == UNK)

    def to_dict(self) -> dict:
        return {"kind": "word", "symbols": list(self.symbols), "lowercase": self.lowercase}


class SentencePieceVocab:
    """A sentencepiece model trained in-process on the training text; decode() detokenizes."""

    def __init__(self, model: bytes):
        import sentencepiece as spm

        self.model = model
        self.sp = spm.SentencePieceProcessor(model_proto=model)

    @classmethod
    def train(
        cls, lines: Iterable[str], vocab_size: int, model_type: str = "unigram", sample: int = 0, seed: int = 1
    ) -> "SentencePieceVocab":
        """Train on `lines` in order; with `sample` > 0, on sentencepiece's own seeded random sample of that
        many lines (its reservoir: `shuffle_input_sentence`), so the cost stays bounded on any corpus."""
        import sentencepiece as spm

        if sample:
            spm.set_random_generator_seed(seed)
        buffer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_writer=buffer,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                pad_id=PAD,
                unk_id=UNK,
                bos_id=BOS,
                eos_id=EOS,
                input_sentence_size=sample or 0,
                shuffle_input_sentence=bool(sample),
                hard_vocab_limit=False,
                num_threads=2,
                minloglevel=2,
            )
        except RuntimeError as exc:  # sentencepiece reports what it cannot do with a corpus as RuntimeError
            raise UserError(_spm_failure(str(exc), vocab_size)) from None
        return cls(buffer.getvalue())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def __eq__(self, other) -> bool:
        return isinstance(other, SentencePieceVocab) and other.model == self.model

    def encode(self, line: str) -> list[int]:
        return self.sp.encode(line)

    def normalize(self, line: str) -> str:
        """The text as sentencepiece reads it (NFKC, single spaces), the form decode() gives."""
        return self.sp.normalize(line).replace("\u2581", " ").strip()

    def encode_many(self, lines: list[str]) -> list[list[int]]:
        return self.sp.encode(lines, num_threads=1)  # one core: ranks and benchmarks set the parallelism

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if i > EOS or i == UNK])

    def to_dict(self) -> dict:
        return {"kind": "spm", "model": torch.frombuffer(bytearray(self.model), dtype=torch.uint8)}


TARGET_MULTIPLE = 64  # TargetPieces.seen pads the target side to a multiple of this


class TargetPieces:
    """The joint sentencepiece model restricted to the pieces that occur in the training targets (padded with
    a few unused ones to a multiple of 64, see `seen`).

    A de→en joint 8k model uses only ~4k pieces on the English side, so a decoder whose embedding and
    output layer span just those does half the output-projection and softmax work (the largest cost of a
    training step and of beam search) while source and target keep one segmentation. Ids are positions in
    `pieces` (sorted joint ids, the four specials first, so they keep their ids); a joint piece outside
    the set encodes as <unk>, which only validation or test targets can contain."""

    def __init__(self, joint: SentencePieceVocab, pieces):
        self.joint = joint
        self.pieces = np.asarray(pieces, dtype=np.int64)
        self.lut = np.full(len(joint), UNK, dtype=np.int64)
        self.lut[self.pieces] = np.arange(len(self.pieces))
        self._lut, self._pieces = self.lut.tolist(), self.pieces.tolist()

    @classmethod
    def seen(cls, joint: SentencePieceVocab, counts: np.ndarray, multiple: int = TARGET_MULTIPLE) -> "TargetPieces":
        """The pieces with a non-zero count (counts: per joint id, over the training targets), plus the specials,
        topped up to a multiple of `multiple` with the lowest-id unused pieces (for a unigram model, roughly the
        most probable). GEMMs with an odd output width are slow on CPU: a beam step of 500 rows through an output
        layer of 3,963 took 8.85 ms, of 3,968 7.05 (`benchmarks/bench_output_width.py`,
        results/speed/bench-output-width.json; nanoGPT pads its vocabulary for the same reason). The extra
        pieces never occur as targets, so the model learns not to emit them."""
        seen = np.union1d(np.arange(len(SPECIALS)), np.flatnonzero(counts))
        size = min(len(joint), -(-len(seen) // multiple) * multiple)
        filler = np.setdiff1d(np.arange(len(joint)), seen)[: size - len(seen)]
        return cls(joint, np.union1d(seen, filler))

    def __len__(self) -> int:
        return len(self.pieces)

    def __eq__(self, other) -> bool:
        same = isinstance(other, TargetPieces) and other.joint == self.joint
        return same and np.array_equal(other.pieces, self.pieces)

    def encode(self, line: str) -> list[int]:
        lut = self._lut
        return [lut[i] for i in self.joint.encode(line)]

    def normalize(self, line: str) -> str:
        return self.joint.normalize(line)

    def encode_many(self, lines: list[str]) -> list[list[int]]:
        lut = self._lut
        return [[lut[i] for i in ids] for ids in self.joint.encode_many(lines)]

    def decode(self, ids: list[int]) -> str:
        pieces = self._pieces
        return self.joint.decode([pieces[i] for i in ids])


def seqvocab_from_dict(data: dict):
    if data["kind"] == "spm":
        return SentencePieceVocab(data["model"].numpy().tobytes())
    return WordVocab(tuple(data["symbols"]), data.get("lowercase", False))


@dataclass(frozen=True)
class Vocabs:
    """The source and target vocabularies (one object twice when joint)."""

    src: SentencePieceVocab | WordVocab
    tgt: SentencePieceVocab | TargetPieces | WordVocab

    def to_dict(self) -> dict:
        if self.src is self.tgt:
            return {"joint": self.src.to_dict()}
        if isinstance(self.tgt, TargetPieces) and self.tgt.joint == self.src:
            return {"joint": self.src.to_dict(), "target_pieces": torch.from_numpy(self.tgt.pieces)}
        return {"src": self.src.to_dict(), "tgt": self.tgt.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabs":
        if "joint" in data:
            joint = seqvocab_from_dict(data["joint"])
            if "target_pieces" in data:
                return cls(joint, TargetPieces(joint, data["target_pieces"].numpy()))
            return cls(joint, joint)
        return cls(seqvocab_from_dict(data["src"]), seqvocab_from_dict(data["tgt"]))

    @classmethod
    def build(cls, d, sources: Callable[[], Iterable[str]], targets: Callable[[], Iterable[str]], lines: int):
        """From the training text (`sources()`/`targets()` give a fresh pass each; `lines` counts both):
        a joint sentencepiece model on every line up to SPM_SAMPLE lines, on a random sample above."""
        if d.tokenizer == "spm":
            sample = SPM_SAMPLE if lines > SPM_SAMPLE else 0
            joint = SentencePieceVocab.train(chain(sources(), targets()), d.vocab_size, sample=sample)
            return cls(joint, joint)
        return cls(
            WordVocab.build(sources(), d.min_freq, d.max_vocab, d.lowercase),
            WordVocab.build(targets(), d.min_freq, d.max_vocab, d.lowercase),
        )


def sentencepiece_note(d: DataConfig, vocabs: Vocabs) -> str | None:
    """A line saying so when sentencepiece built fewer pieces than data.vocab_size (it does, silently, when
    the corpus is too small for more)."""
    if d.tokenizer != "spm" or len(vocabs.src) >= d.vocab_size:
        return None
    return (
        f"sentencepiece: {len(vocabs.src):,} pieces, fewer than the {d.vocab_size:,} asked for (data.vocab_size): "
        "the corpus is too small for more"
    )
