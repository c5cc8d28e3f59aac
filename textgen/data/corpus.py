"""Read language-model corpora into train/valid/test text, from the registry or a plain file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textgen.data.registry import fetch, lookup, sha256_of
from textgen.errors import UserError


@dataclass(frozen=True)
class TextCorpus:
    splits: dict[str, str]  # train / valid / test -> text
    sha256: dict[str, str]  # file -> sha256, for results files


def read_text(path: Path) -> str:
    if not path.is_file():
        raise UserError(
            f"corpus file '{path}' does not exist: check the path or use a registry name (textgen data list)"
        )
    raw = path.read_bytes()
    if b"\x00" in raw[: 1 << 16]:
        raise UserError(f"corpus file '{path}' looks binary (NUL bytes): give a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"corpus file '{path}' is not UTF-8 (byte {exc.start}): convert it with iconv -t utf-8"
        ) from None
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise UserError(f"corpus file '{path}' is empty: give a file with text in it")
    return text


def split_tail(text: str, holdout: float) -> dict[str, str]:
    """First (1-holdout) for training (nanoGPT's cut), then the held-out tail's first half for validation
    and its second half for test: the text that picks checkpoints is never the text reported as test."""
    if not 0.0 < holdout < 1.0:
        raise UserError(f"data.holdout must be between 0 and 1, got {holdout}")
    cut = int(len(text) * (1.0 - holdout))
    mid = cut + (len(text) - cut) // 2
    return {"train": text[:cut], "valid": text[cut:mid], "test": text[mid:]}


def load_text_corpus(corpus: str, holdout: float) -> TextCorpus:
    path = Path(corpus)
    if path.suffix or path.exists() or "/" in corpus:
        return TextCorpus(split_tail(read_text(path), holdout), {path.name: sha256_of(path)})
    entry = lookup(corpus)
    files = fetch(corpus)
    shas = {f"{corpus}/{f.name}": f.sha256 for f in entry.files}
    if entry.text:
        return TextCorpus(split_tail(read_text(files[entry.text]), entry.holdout), shas)
    return TextCorpus({split: read_text(files[name]) for split, name in entry.splits.items()}, shas)
