"""Sequence-level knowledge distillation (Kim & Rush 2016): a student trains on its corpus's training sources
with the outputs of a teacher (one checkpoint or the ensemble of several) as targets, `data.distill_from`.

The teacher's outputs are decoded once and kept in the cache, in a folder keyed by the teachers' sha256, the
training sources' sha256 and the decode settings, so every student of the same teachers reuses them (the key is
known without loading a model or reading the corpus). Decoding appends a chunk at a time to a partial file: an
interrupted run goes on from the last whole chunk, and the file takes its final name only when every source is
decoded. Students started side by side take turns: one decodes under a lock file in the folder, the others wait
and then read its outputs. The data preparation then reads it as the training targets (data/prepared_parallel.py),
alone or beside the original ones (`data.distill_targets`)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from textgen.config import Recipe, recipe_from_checkpoint
from textgen.console import progress_bar, stderr_console
from textgen.data.parallel import load_parallel
from textgen.data.prepared import file_sha256, fingerprint
from textgen.data.prepared_parallel import training_sources_key
from textgen.decode import settings
from textgen.decode.dispatch import decode_sources, work_items
from textgen.errors import UserError
from textgen.paths import cache_dir
from textgen.results import make_result, write_result
from textgen.train import checkpoint

CHUNK = 1000  # sources decoded (and made safe on disk) at a time
TARGETS = "train.tgt"  # the distilled targets, one per training source, in corpus order
MANIFEST = "distill.json"
LOCK = "decode.lock"  # held by the one run that decodes


def teacher_paths(spec: str) -> list[Path]:
    """The checkpoints of `data.distill_from` ("a.pt" or "a.pt,b.pt,..."), each checked to exist."""
    paths = [Path(p.strip()) for p in spec.split(",") if p.strip()]
    if not paths:
        raise UserError(f"data.distill_from = {spec!r} names no checkpoint: give one path or several, comma-separated")
    for path in paths:
        if not path.is_file():
            raise UserError(f"data.distill_from: teacher checkpoint '{path}' does not exist: check the path")
    return paths


def distilled_targets(recipe: Recipe, device: torch.device = torch.device("cpu"), decode: bool = True) -> Path | None:
    """The file of the teachers' outputs for `recipe`'s training sources, decoded now unless cached (decode
    False: None then): as the first teacher's [decode] says (beam search, or MBR where it sets
    decode.mbr.samples), the sources encoded with the teachers' vocabulary."""
    teachers = teacher_paths(recipe.data.distill_from)
    # the recipe alone is needed here: the mapped tensors are not read
    teacher_recipe = recipe_from_checkpoint(checkpoint.load(teachers[0], kind="seq2seq", mmap=True))
    cfg = settings.resolve(teacher_recipe.decode, device)
    keyed = {
        "teachers": [file_sha256(p) for p in teachers],
        "sources": training_sources_key(recipe.data.corpus),
        "decode": {**dataclasses.asdict(cfg), "batch_size": None},  # the batch does not change an output
        "max_source_tokens": teacher_recipe.data.max_source_tokens,
    }
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(recipe.data.corpus).name)[:40]
    folder = cache_dir() / "distilled" / f"{safe or 'corpus'}-{fingerprint(keyed)[:16]}"
    if (folder / TARGETS).is_file() or not decode:
        return folder / TARGETS if (folder / TARGETS).is_file() else None
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        stderr_console().print(f"waiting for another run that decodes the teachers' outputs into {folder}")
        lock.acquire()
    try:
        if not (folder / TARGETS).is_file():  # not finished by the run this one waited for
            _decode(folder, teachers, recipe.data.corpus, device, keyed)
    finally:
        lock.release()
    return folder / TARGETS


def _decode(folder: Path, teachers: list[Path], corpus: str, device: torch.device, keyed: dict) -> None:
    from textgen.tasks.seq2seq import encode_sources, load_models  # which imports this module

    model, vocabs, teacher_recipe, _ = load_models(teachers, device)
    cfg = settings.resolve(teacher_recipe.decode, device, model=model)
    sources = load_parallel(corpus, only="train").splits["train"].sources
    partial = folder / f"{TARGETS}.partial"
    done = _whole_lines(partial)
    start = time.perf_counter()
    with (
        progress_bar("distil train", work_items(cfg, len(sources))) as advance,
        open(partial, "a", encoding="utf-8") as out,
    ):
        advance(work_items(cfg, done))
        for first in range(done, len(sources), CHUNK):
            ids = encode_sources(vocabs, sources[first : first + CHUNK], teacher_recipe.data.max_source_tokens)
            outputs = decode_sources(model, vocabs.tgt.decode, ids, cfg, advance=advance)
            out.write("".join(" ".join(d.text.split()) + "\n" for d in outputs))  # one line per source
            out.flush()
            os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    if _whole_lines(partial, chunk=1) != len(sources):  # another process appended too: start again
        partial.unlink()
        raise UserError(
            f"'{partial}' was written by two runs at once (its folder's lock file did not hold them apart, as on some "
            "network file systems): run one student at a time while it decodes"
        )
    count = len(sources) - done
    metrics = {"sources": len(sources), "decoded_now": count, "sentences_per_s": round(count / max(seconds, 1e-9), 1)}
    extra = {"teachers": [str(p.resolve()) for p in teachers], "teachers_sha256": keyed["teachers"]}
    write_result(folder / MANIFEST, make_result(metrics, keyed["sources"], seconds, **extra, decode=keyed["decode"]))
    os.replace(partial, folder / TARGETS)


def _whole_lines(path: Path, chunk: int | None = None) -> int:
    """The lines of whole chunks (of `chunk`, default CHUNK, lines) in a partial file, which is cut after them:
    a chunk cut short by a crash is dropped."""
    if not path.is_file():
        return 0
    chunk = chunk or CHUNK
    data = path.read_bytes()
    count = data.count(b"\n")
    keep = count // chunk * chunk
    end = data.rfind(b"\n") + 1  # just past the last line end (0 when there is none)
    for _ in range(count - keep):  # back over the lines of the torn chunk, one line end each
        end = data.rfind(b"\n", 0, end - 1) + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return keep
