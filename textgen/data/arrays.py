"""Token ids on disk: flat numpy `.npy` arrays, memory-mapped on open, so a corpus costs page cache, not heap.

A split of sentences is a `Ragged` array (all ids end to end, plus offsets); raw text lines (references
for rewards and metrics) are a `Lines` array of UTF-8 bytes with offsets. Files are written in chunks
(bounded memory whatever the corpus size) through numpy's own `.npy` format.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from textgen.errors import UserError


def id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds every id: 2 bytes a token for vocabularies up to 65,536."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


HEADER_BYTES = 128  # numpy's .npy v1.0 header for any 1-D array: magic, length, dict, padded to 64-byte multiples


def npy_header(dtype: np.dtype, count: int) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (count,)})
    header = out.getvalue()
    assert len(header) == HEADER_BYTES, len(header)
    return header


class ArrayWriter:
    """Appends 1-D chunks to `name.npy` (numpy's format) with plain writes, so a full disk is an OSError
    where it happens; the header, written first for 0 elements, is rewritten with the count at the end."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype, self.count = path, np.dtype(dtype), 0
        self._file = open(path, "wb")
        self._file.write(npy_header(self.dtype, 0))

    def append(self, values) -> None:
        array = np.asarray(values, dtype=self.dtype)
        self._file.write(array.tobytes())
        self.count += array.size

    def finish(self) -> None:
        self._file.seek(0)
        self._file.write(npy_header(self.dtype, self.count))
        self._file.close()


class RaggedWriter:
    """Sequences of ids appended in order; `finish` writes `<stem>.ids.npy` and `<stem>.offsets.npy`."""

    def __init__(self, folder: Path, stem: str, dtype: np.dtype):
        self.ids = ArrayWriter(folder / f"{stem}.ids.npy", dtype)
        self.offsets = ArrayWriter(folder / f"{stem}.offsets.npy", np.int64)
        self.offsets.append([0])

    def extend(self, seqs: list[Sequence[int]]) -> None:
        """Append a chunk of sequences (one write per chunk, not per sequence)."""
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        self._append(np.fromiter(chain.from_iterable(seqs), dtype=self.ids.dtype, count=int(lengths.sum())), lengths)

    def extend_lines(self, lines: list[str]) -> None:
        """Append a chunk of text lines as their UTF-8 bytes (read back with `Lines`)."""
        encoded = [line.encode("utf-8") for line in lines]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        self._append(np.frombuffer(b"".join(encoded), dtype=np.uint8), lengths)

    def _append(self, flat: np.ndarray, lengths: np.ndarray) -> None:
        start = self.ids.count
        self.ids.append(flat)
        self.offsets.append(start + np.cumsum(lengths))

    def finish(self) -> None:
        self.ids.finish()
        self.offsets.finish()


def open_array(path: Path, mode: str = "r") -> np.ndarray:
    """A memory map of `path` (read-only; "c": copy-on-write, for torch tensors that must be writable; "r+": in
    place, while a folder is being prepared);
    a missing or truncated file is a one-line error."""
    try:
        return np.load(path, mmap_mode=mode)
    except FileNotFoundError:
        raise UserError(f"prepared file '{path}' is missing: delete its folder and prepare the corpus again") from None
    except ValueError as exc:  # numpy: the header promises more bytes than the file has
        raise UserError(
            f"prepared file '{path}' is damaged ({exc}): delete its folder and prepare the corpus again"
        ) from None


class Ragged:
    """Memory-mapped sequences: `ids[offsets[i]:offsets[i+1]]` is sequence i."""

    def __init__(self, folder: Path, stem: str):
        self.ids = open_array(folder / f"{stem}.ids.npy")
        self.offsets = open_array(folder / f"{stem}.offsets.npy")
        if self.offsets.size == 0 or int(self.offsets[-1]) != self.ids.size:
            raise UserError(
                f"prepared arrays '{folder / stem}.*.npy' do not agree (offsets end at "
                f"{int(self.offsets[-1]) if self.offsets.size else 'nothing'}, {self.ids.size} ids): "
                "delete the folder and prepare the corpus again"
            )

    def __len__(self) -> int:
        return self.offsets.size - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


class Lines(Sequence[str]):
    """Text lines stored as UTF-8 bytes with offsets; a line is decoded only when asked for."""

    def __init__(self, folder: Path, stem: str):
        self._bytes = Ragged(folder, stem)

    def __len__(self) -> int:
        return len(self._bytes)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._bytes[i].tobytes().decode("utf-8")
