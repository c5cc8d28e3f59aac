"""Vocabularies that live inside checkpoints: characters, or words with <unk> and <eos>."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property

from textgen.errors import UserError

UNK, EOS = "<unk>", "<eos>"
UNK_CHAR = "\ufffd"  # U+FFFD, Unicode's replacement character: stands for any character the training text lacks


@dataclass(frozen=True)
class SymbolTable:
    """An ordered tuple of symbols; a symbol's id is its position."""

    symbols: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.symbols)

    @cached_property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols)}


@dataclass(frozen=True)
class CharVocab(SymbolTable):
    """One id per character of the training text, plus UNK_CHAR for the characters it lacks (in held-out text
    or another corpus): held-out text never shapes the vocabulary. Vocabularies saved without UNK_CHAR (built
    by earlier versions from every split) still load; text with a character they lack is an error."""

    @classmethod
    def build(cls, train_text: str) -> "CharVocab":
        return cls(tuple(sorted(set(train_text) | {UNK_CHAR})))

    def encode(self, text: str) -> list[int]:
        index = self.index
        unk = index.get(UNK_CHAR)
        if unk is not None:
            return [index.get(c, unk) for c in text]
        missing = set(text) - index.keys()
        if missing:
            raise UserError(
                f"the text has characters {''.join(sorted(missing))!r} that the model's vocabulary lacks: "
                "use the corpus the model was trained on"
            )
        return [index[c] for c in text]

    def encode_prompt(self, text: str) -> list[int]:
        index = self.index
        missing = sorted({c for c in text if c not in index})
        if missing:
            raise UserError(
                f"characters {''.join(missing)!r} are not in the model's vocabulary of {len(self)} characters: "
                "remove them"
            )
        return [index[c] for c in text]

    def start_ids(self) -> list[int]:
        """Context for an unprimed sample: a line break, the most neutral start a corpus has."""
        return [self.index.get("\n", 0)]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.symbols[i] for i in ids)

    def to_dict(self) -> dict:
        return {"kind": "char", "symbols": list(self.symbols)}


@dataclass(frozen=True)
class WordVocab(SymbolTable):
    """Whitespace words, <eos> at each line end, rare words mapped to <unk> (the PTB convention)."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        words: list[str] = []
        for line in text.splitlines():
            words += line.split() + [EOS]
        return words

    @classmethod
    def build(cls, train_text: str, min_freq: int = 1, max_vocab: int = 0) -> "WordVocab":
        counts = Counter(cls.tokenize(train_text))
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_vocab:
            kept = kept[: max(0, max_vocab - 2)]
        return cls((UNK, EOS, *kept))

    def encode(self, text: str) -> list[int]:
        index = self.index
        unk = index[UNK]
        return [index.get(w, unk) for w in self.tokenize(text)]

    def encode_prompt(self, text: str) -> list[int]:
        """Prime words, no <eos> appended; unknown words are an error rather than a silent <unk>."""
        index = self.index
        words = text.split()
        missing = sorted({w for w in words if w not in index})
        if missing:
            raise UserError(f"words {missing[:5]} are not in the model's vocabulary: remove or replace them")
        return [index[w] for w in words]

    def decode(self, ids: list[int]) -> str:
        text = " ".join(self.symbols[i] for i in ids)
        for pattern in (f" {EOS} ", f" {EOS}", f"{EOS} ", EOS):
            text = text.replace(pattern, "\n")
        return text

    def start_ids(self) -> list[int]:
        return [self.index[EOS]]

    def to_dict(self) -> dict:
        return {"kind": "word", "symbols": list(self.symbols)}


Vocab = CharVocab | WordVocab
VOCABS = {"char": CharVocab, "word": WordVocab}


def vocab_from_dict(data: dict) -> Vocab:
    return VOCABS[data["kind"]](tuple(data["symbols"]))


def build_vocab(level: str, splits: dict[str, str], min_freq: int, max_vocab: int) -> Vocab:
    """From the training split alone."""
    if level == "char":
        return CharVocab.build(splits["train"])
    return WordVocab.build(splits["train"], min_freq, max_vocab)
