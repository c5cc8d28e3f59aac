"""Seq2seq vocabularies with fixed special ids: sentencepiece subwords or whitespace words.

Both live in the checkpoint (the sentencepiece model as bytes), so decoding needs no corpus.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain

import torch

from textgen.data.vocab import SymbolTable

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
SPM_SAMPLE = 2_000_000  # sentencepiece trains on every line up to this many, on a random sample of this many above


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

    def encode(self, line: str) -> list[int]:
        index = self.index
        return [index.get(w, UNK) for w in (line.lower() if self.lowercase else line).split()]

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
        return cls(buffer.getvalue())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def __eq__(self, other) -> bool:
        return isinstance(other, SentencePieceVocab) and other.model == self.model

    def encode(self, line: str) -> list[int]:
        return self.sp.encode(line)

    def encode_many(self, lines: list[str]) -> list[list[int]]:
        return self.sp.encode(lines, num_threads=1)  # one core: ranks and benchmarks set the parallelism

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if i > EOS or i == UNK])

    def to_dict(self) -> dict:
        return {"kind": "spm", "model": torch.frombuffer(bytearray(self.model), dtype=torch.uint8)}


def seqvocab_from_dict(data: dict):
    if data["kind"] == "spm":
        return SentencePieceVocab(data["model"].numpy().tobytes())
    return WordVocab(tuple(data["symbols"]), data.get("lowercase", False))


@dataclass(frozen=True)
class Vocabs:
    """The source and target vocabularies (one object twice when joint)."""

    src: SentencePieceVocab | WordVocab
    tgt: SentencePieceVocab | WordVocab

    def to_dict(self) -> dict:
        if self.src is self.tgt:
            return {"joint": self.src.to_dict()}
        return {"src": self.src.to_dict(), "tgt": self.tgt.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabs":
        if "joint" in data:
            joint = seqvocab_from_dict(data["joint"])
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
