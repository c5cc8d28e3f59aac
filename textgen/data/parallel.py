"""Parallel corpora (source/target line-aligned files, plain or gzipped) for seq2seq tasks."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from textgen.data.registry import fetch, lookup, sha256_of
from textgen.errors import UserError


@dataclass(frozen=True)
class ParallelSplit:
    sources: list[str]
    targets: list[str]
    extra_refs: list[list[str]] = field(default_factory=list)  # each a full list aligned with targets


@dataclass(frozen=True)
class ParallelCorpus:
    splits: dict[str, ParallelSplit]
    sha256: dict[str, str]


def read_lines(path: Path) -> list[str]:
    """Every line of `path` (plain or gzipped UTF-8, a BOM dropped, CRLF or LF, the last newline optional)."""
    return [line for chunk in stream_line_chunks(path) for line in chunk]


LINES_PER_CHUNK = 1 << 16
BLOCK_CHARS = 1 << 22  # characters decoded and split at a time


def open_bytes(path: Path):
    """`path` opened for reading bytes, decompressed when it is gzipped (by its magic bytes, not its name)."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


@contextmanager
def decoding(path: Path) -> Iterator[None]:
    """Reading `path`: a damaged gzip stream or a non-UTF-8 byte is a one-line error naming the file (and
    the line), not an EOFError that the CLI framework reports as a bare "Aborted."."""
    try:
        yield
    except EOFError:
        raise UserError(f"'{path}' is a truncated gzip file: download it again (or gzip it again)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise UserError(f"'{path}' is not a valid gzip file ({exc}): download it again") from None
    except UnicodeDecodeError:
        raise UserError(
            f"'{path}' line {undecodable_line(path)} is not UTF-8: convert the file with iconv -f ENCODING -t utf-8"
        ) from None


def undecodable_line(path: Path) -> int:
    """The number of the first line of `path` that is not UTF-8 (read again, line by line: errors only)."""
    with open_bytes(path) as raw:
        for number, line in enumerate(raw, 1):
            try:
                line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                return number
    return number


def stream_line_chunks(path: Path, size: int = LINES_PER_CHUNK) -> Iterator[list[str]]:
    """The lines of `path` as `read_lines` gives them, in lists of `size` (the last shorter, so two files'
    chunks stay aligned). Blocks are split in C, not line by line: reading must not limit `data prepare`."""
    if not path.is_file():
        raise UserError(f"file '{path}' does not exist: check the path")
    buffer, tail = [], ""
    with decoding(path), io.TextIOWrapper(open_bytes(path), encoding="utf-8-sig", newline="\n") as text:
        while block := text.read(BLOCK_CHARS):
            block = tail + block
            lines = block.split("\n")
            tail = lines.pop()
            buffer += [line.rstrip("\r") for line in lines] if "\r" in block else lines
            while len(buffer) >= size:
                yield buffer[:size]
                del buffer[:size]
    if tail:
        buffer.append(tail.rstrip("\r"))
    if buffer:
        yield buffer


def stream_lines(path: Path) -> Iterator[str]:
    """The lines of `path` one at a time, as `read_lines` gives them."""
    for chunk in stream_line_chunks(path):
        yield from chunk


def stream_pair_chunks(src: Path, tgt: Path, size: int = LINES_PER_CHUNK) -> Iterator[tuple[list[str], list[str]]]:
    """Line-aligned (sources, targets) lists of `size` pairs read lazily, with `read_pair`'s checks (counts,
    empty lines)."""
    count, sources, targets = 0, stream_line_chunks(src, size), stream_line_chunks(tgt, size)
    for s, t in zip_longest(sources, targets, fillvalue=[]):
        if len(s) != len(t):
            n_src = count + len(s) + sum(map(len, sources))
            n_tgt = count + len(t) + sum(map(len, targets))
            raise UserError(f"'{src}' has {n_src} lines but '{tgt}' has {n_tgt}: parallel files must be line-aligned")
        for name, lines in ((src, s), (tgt, t)):
            if "" in lines or any(map(str.isspace, lines)):  # `not line.strip()`, without a Python loop per line
                bad = next(i for i, line in enumerate(lines, count + 1) if not line.strip())
                raise UserError(f"'{name}' line {bad} is empty: remove empty pairs from both files")
        count += len(s)
        yield s, t
    if not count:
        raise UserError(f"'{src}' is empty: give a corpus with at least one pair")


def own_files(corpus: str) -> dict[str, tuple[Path, Path]] | None:
    """The split -> (source, target) paths of a corpus given as 'train.de,train.en;valid.de,valid.en[;test...]'."""
    if ";" not in corpus and "," not in corpus:
        return None
    out = {}
    for name, spec in zip(("train", "valid", "test"), corpus.split(";")):
        src, _, tgt = spec.partition(",")
        out[name] = (Path(src), Path(tgt))
    return out


def read_pair(src: Path, tgt: Path, allow_empty_target: bool = False) -> ParallelSplit:
    sources, targets = read_lines(src), read_lines(tgt)
    if len(sources) != len(targets):
        raise UserError(
            f"'{src}' has {len(sources)} lines but '{tgt}' has {len(targets)}: parallel files must be line-aligned"
        )
    if not sources:
        raise UserError(f"'{src}' is empty: give a corpus with at least one pair")
    for name, lines in ((src, sources), (tgt, targets)):
        for i, line in enumerate(lines):
            if not line.strip() and not (allow_empty_target and name == tgt):
                raise UserError(f"'{name}' line {i + 1} is empty: remove empty pairs from both files")
    return ParallelSplit(sources, targets)


def hash_split(sources: list[str], targets: list[str], valid: float, test: float) -> dict[str, ParallelSplit]:
    """De-duplicate pairs, then hash each source sentence into train/valid/test.

    Hashing the source (not the pair) keeps every translation of one sentence in one split, so
    no valid or test source sentence occurs in train; the split never changes with file order.
    """
    buckets: dict[str, tuple[list[str], list[str]]] = {s: ([], []) for s in ("train", "valid", "test")}
    seen = set()
    for src, tgt in zip(sources, targets):
        if (src, tgt) in seen or not src.strip() or not tgt.strip():
            continue
        seen.add((src, tgt))
        u = int.from_bytes(hashlib.sha256(src.encode()).digest()[:8], "big") / 2**64
        split = "valid" if u < valid else "test" if u < valid + test else "train"
        buckets[split][0].append(src)
        buckets[split][1].append(tgt)
    return {name: ParallelSplit(s, t) for name, (s, t) in buckets.items()}


def load_parallel(corpus: str, only: str | None = None) -> ParallelCorpus:
    """A registered corpus by name, or `SRC_PREFIX` paths given as 'train.de,train.en;valid.de,valid.en'.

    only: read just this split (evaluation), not a training side that may be gigabytes; a corpus without
    it is a one-line error. Hash-split corpora (one pair of files) are read whole either way."""

    def wanted(names) -> list[str]:
        if only is None:
            return list(names)
        if only not in names:
            raise UserError(f"corpus '{corpus}' has no {only} split: choose from {', '.join(names)}")
        return [only]

    files = own_files(corpus)
    if files is not None:
        if only is not None and len(files) == 1:  # one pair of files given for the split asked for
            files = {only: files["train"]}
        splits = {name: read_pair(*files[name]) for name in wanted(files)}
        shas = {f"{name}.{side}": sha256_of(path) for name in splits for side, path in zip(("src", "tgt"), files[name])}
        return ParallelCorpus(splits, shas)
    entry = lookup(corpus)
    if not (entry.pairs or entry.hash_split):
        raise UserError(f"corpus '{corpus}' is not a parallel corpus: use it with a language-model recipe")
    files = fetch(corpus)
    shas = {f"{corpus}/{f.name}": f.sha256 for f in entry.files}
    if entry.hash_split:
        src, tgt = (read_lines(files[name]) for name in entry.hash_split["files"])
        if len(src) != len(tgt):
            raise UserError(f"corpus '{corpus}' files have different line counts: re-fetch it")
        split = hash_split(src, tgt, entry.hash_split["valid"], entry.hash_split["test"])
        return ParallelCorpus({name: split[name] for name in wanted(split)}, shas)
    splits = {}
    for split in wanted(entry.pairs):
        src, tgt = entry.pairs[split]
        pair = read_pair(files[src], files[tgt])
        refs = [read_lines(files[name]) for name in entry.refs.get(split, [])]
        splits[split] = ParallelSplit(pair.sources, pair.targets, refs)
    return ParallelCorpus(splits, shas)
