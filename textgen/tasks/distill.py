"""Sequence-level knowledge distillation (Kim & Rush 2016): a student trains on its corpus's training sources
with the outputs of a teacher (one checkpoint or the ensemble of several) as targets, `data.distill_from`.

The teacher's outputs are decoded once and kept in the cache, in a folder keyed by the teachers' sha256, the
training sources' sha256 and the decode settings, so every student of the same teachers reuses them. Decoding
appends a chunk at a time to a partial file: an interrupted run goes on from the last whole chunk, and the file
takes its final name only when every source is decoded. The data preparation then reads it as the training
targets (data/prepared_parallel.py), alone or beside the original ones (`data.distill_targets`)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch

from textgen.config import Recipe
from textgen.console import progress_bar
from textgen.data.parallel import load_parallel
from textgen.data.prepared import fingerprint
from textgen.data.registry import sha256_of
from textgen.decode import settings
from textgen.decode.dispatch import decode_sources
from textgen.errors import UserError
from textgen.paths import cache_dir
from textgen.results import make_result, write_result

CHUNK = 1000  # sources decoded (and made safe on disk) at a time
TARGETS = "train.tgt"  # the distilled targets, one per training source, in corpus order
MANIFEST = "distill.json"


def teacher_paths(spec: str) -> list[Path]:
    """The checkpoints of `data.distill_from` ("a.pt" or "a.pt,b.pt,..."), each checked to exist."""
    paths = [Path(p.strip()) for p in spec.split(",") if p.strip()]
    if not paths:
        raise UserError(f"data.distill_from = {spec!r} names no checkpoint: give one path or several, comma-separated")
    for path in paths:
        if not path.is_file():
            raise UserError(f"data.distill_from: teacher checkpoint '{path}' does not exist: check the path")
    return paths


def distilled_targets(recipe: Recipe, device: torch.device = torch.device("cpu")) -> Path:
    """The file of the teachers' outputs for `recipe`'s training sources (decoded now unless cached): beam
    search as the first teacher's [decode] says, the sources encoded with the teachers' vocabulary."""
    from textgen.tasks.seq2seq import encode_sources, load_models  # which imports this module

    teachers = teacher_paths(recipe.data.distill_from)
    model, vocabs, teacher_recipe, _ = load_models(teachers, device)
    cfg = settings.resolve(teacher_recipe.decode, device, model=model)
    corpus = load_parallel(recipe.data.corpus, only="train")
    sources = corpus.splits["train"].sources
    keyed = {
        "teachers": [sha256_of(p) for p in teachers],
        "sources": {k: v for k, v in corpus.sha256.items() if not k.startswith(("valid.", "test."))},
        "decode": {**dataclasses.asdict(cfg), "batch_size": None},  # the batch does not change an output
        "max_source_tokens": teacher_recipe.data.max_source_tokens,
    }
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(recipe.data.corpus).name)[:40]
    folder = cache_dir() / "distilled" / f"{safe or 'corpus'}-{fingerprint(keyed)[:16]}"
    final = folder / TARGETS
    if final.is_file():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{TARGETS}.partial"
    done = _whole_lines(partial)
    start = time.perf_counter()
    with progress_bar("distil train", len(sources)) as advance, open(partial, "a", encoding="utf-8") as out:
        advance(done)
        for first in range(done, len(sources), CHUNK):
            ids = encode_sources(vocabs, sources[first : first + CHUNK], teacher_recipe.data.max_source_tokens)
            outputs = decode_sources(model, vocabs.tgt.decode, ids, cfg, advance=advance)
            out.write("".join(" ".join(d.text.split()) + "\n" for d in outputs))  # one line per source
            out.flush()
            os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    count = len(sources) - done
    metrics = {"sources": len(sources), "decoded_now": count, "sentences_per_s": round(count / max(seconds, 1e-9), 1)}
    extra = {"teachers": [str(p.resolve()) for p in teachers], "teachers_sha256": keyed["teachers"]}
    manifest = make_result(metrics, keyed["sources"], seconds, **extra, decode=keyed["decode"])
    write_result(folder / MANIFEST, manifest)
    os.replace(partial, final)
    return final


def _whole_lines(path: Path) -> int:
    """The whole chunks' lines already in a partial file; a chunk cut short by a crash is dropped."""
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        data = f.read()
    keep = data.count(b"\n") // CHUNK * CHUNK
    end = 0
    for _ in range(keep):
        end = data.index(b"\n", end) + 1
    with open(path, "r+b") as f:
        f.truncate(end)
    return keep
