"""Read language-model corpora into train/valid/test text, from the registry or a plain file; find the files
a corpus setting names from any folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textgen.data.parallel import decoding, open_bytes, own_files
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
    with decoding(path), open_bytes(path) as raw:  # gzip is decompressed; errors name the line
        data = raw.read()
        if b"\x00" in data[: 1 << 16]:
            raise UserError(f"corpus file '{path}' looks binary (NUL bytes): give a UTF-8 text file (or one gzipped)")
        text = data.decode("utf-8-sig").replace("\r\n", "\n")
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
    if own_file(corpus):
        return TextCorpus(split_tail(read_text(path), holdout), {path.name: sha256_of(path)})
    entry = lookup(corpus)
    files = fetch(corpus)
    shas = {f"{corpus}/{f.name}": f.sha256 for f in entry.files}
    if entry.text:
        return TextCorpus(split_tail(read_text(files[entry.text]), entry.holdout), shas)
    return TextCorpus({split: read_text(files[name]) for split, name in entry.splits.items()}, shas)


def own_file(corpus: str) -> bool:
    """Whether a language model's corpus setting is a path to the user's file (else a registry name)."""
    path = Path(corpus)
    return bool(path.suffix or path.exists() or "/" in corpus)


def corpus_paths(corpus: str, task: str) -> dict[str, list[Path]]:
    """The user's files a corpus setting names, by split ("all" for a language model's one file); {} for
    a registry name."""
    if task == "lm":
        return {"all": [Path(corpus)]} if own_file(corpus) else {}
    return {split: list(pair) for split, pair in (own_files(corpus) or {}).items()}


def absolute_corpus(corpus: str, task: str, base: Path | None = None) -> str:
    """`corpus` with relative paths of the user's files taken from `base` (default: the working folder), so
    the setting names the same files from any folder; a registry name stays as it is."""
    base = Path.cwd() if base is None else base
    paths = corpus_paths(corpus, task)
    if not paths:
        return corpus
    absolute = {split: [str(base / p) for p in pair] for split, pair in paths.items()}
    return ";".join(",".join(pair) for pair in absolute.values())


def training_corpus(payload: dict, task: str, corpus: str, split: str) -> str:
    """A checkpoint's training corpus, found from any folder: relative paths are taken from the folder
    training ran in (recorded in the checkpoint). A file of `split` that is not there is a one-line error
    saying to pass the files with --data."""
    workdir = payload.get("data", {}).get("workdir")
    corpus = absolute_corpus(corpus, task, Path(workdir) if workdir else None)
    paths = corpus_paths(corpus, task)
    for path in paths.get("all", paths.get(split, [])):
        if not path.is_file():
            example = "FILE" if task == "lm" else f"{split}.src,{split}.tgt"
            raise UserError(
                f"'{path}', a file of the corpus the checkpoint was trained on, is not there: "
                f"give the {split} data with --data {example}"
            )
    return corpus
