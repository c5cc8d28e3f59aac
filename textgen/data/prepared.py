"""Prepared corpora: tokenized once into memory-mapped arrays (data/arrays.py), reused by every later run.

A prepared folder holds the vocabulary, each split's token ids and a `manifest.json` with the source
files' sha256, the tokenizer settings and the counts. Its name is a hash of exactly those inputs, so
`textgen train` finds and reuses it without reading the corpus (a second run starts in seconds), and
any change of data or tokenizer makes a new one. Folders are built under a temporary name and renamed
when complete: nothing half-written ever looks prepared. Data-parallel ranks map the same files.
"""

from __future__ import annotations

import errno
import gc
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textgen.data.registry import sha256_of
from textgen.errors import UserError
from textgen.paths import as_if_created, cache_dir

FORMAT = 1
MANIFEST = "manifest.json"


def prepared_root() -> Path:
    return cache_dir() / "prepared"


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a user's corpus file, remembered by (path, size, mtime) in the prepared root, so a second
    run does not read a multi-GB corpus again just to find its prepared folder."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    store = prepared_root() / "sha256.json"
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = sha256_of(path)
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            tmp = store.with_name(f".sha256.{os.getpid()}.json")
            tmp.write_text(json.dumps(known), encoding="utf-8")
            os.replace(tmp, store)
        except OSError:  # a read-only cache only costs the next run a re-hash
            pass
    return known[key]


@dataclass(frozen=True)
class Plan:
    """What a prepared folder is made from: its identity (`inputs`) and where it lives."""

    name: str  # the corpus, for the folder name and messages
    inputs: dict  # source files' sha256 + tokenizer settings (+ a given vocabulary's hash)
    paths: dict = field(default_factory=dict, compare=False)  # inputs' file key -> the file's path, for messages

    @property
    def folder(self) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(self.name).name)[:40] or "corpus"
        return prepared_root() / f"{safe}-{fingerprint({'format': FORMAT, **self.inputs})[:16]}"


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"'{folder}' is not a prepared corpus (no {MANIFEST}): prepare one with textgen data prepare")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"'{path}' is damaged: delete '{folder}' and prepare the corpus again") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"'{folder}' was prepared by another textgen version: delete it and prepare the corpus again")
    return manifest


def check_matches(folder: Path, manifest: dict, plan: Plan) -> None:
    """An explicitly given prepared folder must come from the recipe's data and tokenizer settings; the error
    names the first file (with both sha256, whole) or every setting that differs."""
    fix = "prepare the corpus with this recipe (textgen data prepare CORPUS --recipe R) or drop --prepared"
    then, now = manifest["inputs"].get("files", {}), plan.inputs.get("files", {})
    for key in sorted(set(then) | set(now)):
        if then.get(key) != now.get(key):
            name = f"{key} ('{plan.paths[key]}')" if key in plan.paths else key
            what = "layout" if key == "layout" else "sha256"
            raise UserError(
                f"prepared folder '{folder}' was made from other data: {name} has {what} {then.get(key, 'none')} "
                f"there and {now.get(key, 'none')} now: {fix}"
            )
    then, now = manifest["inputs"].get("settings", {}), plan.inputs.get("settings", {})
    differ = [
        f"{k} {then.get(k)!r} there, {now.get(k)!r} here"
        for k in sorted(set(then) | set(now))
        if then.get(k) != now.get(k)
    ]
    if differ:
        raise UserError(
            f"prepared folder '{folder}' was made from other tokenizer settings ({'; '.join(differ)}): {fix}"
        )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Tokenizing makes millions of small acyclic lists of ids; the cycle collector's passes over them find
    nothing and cost a quarter of the encoding time (benchmarks/bench_data.py, encode_pairs_per_s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


OWNER = ".owner"  # in a folder being built: who builds it, so a later build can tell a dead builder's leftovers


def process_identity(pid: int) -> str | None:
    """boot, PID namespace, pid and start time of a process on this machine (Linux), or None: a pid alone
    is reused, and a hostname is shared by containers with their own PID namespaces."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]  # field 22: start time
    except (OSError, IndexError):
        return None
    return f"{boot} {namespace} {pid} {started}"


def remove_abandoned_builds(dest: Path) -> None:
    """Delete temporary folders of `dest` whose builder died (SIGKILL, OOM, power loss) in this boot and PID
    namespace: no process with its pid and start time exists. Live builds, and builds of other machines or
    containers on shared storage, are left alone. A folder is renamed before it is deleted, so a builder
    that is (wrongly) judged dead but renames it into place first keeps it whole."""
    own = process_identity(os.getpid())
    if own is None:  # no /proc: nothing can be judged
        return
    boot_and_namespace = own.split()[:2]
    for tmp in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"):
        try:
            owner = (tmp / OWNER).read_text().split()
        except OSError:  # no owner file yet (just made), or not readable: not ours to judge
            continue
        if len(owner) != 4 or owner[:2] != boot_and_namespace or not owner[2].isdigit():
            continue
        if process_identity(int(owner[2])) == " ".join(owner):  # still building
            continue
        dead = tmp.with_name(tmp.name.removesuffix(".tmp") + ".dead")
        try:
            os.rename(tmp, dead)
        except OSError:
            continue
        shutil.rmtree(dead, ignore_errors=True)


def build(plan: Plan, write, root: Path | None = None) -> Path:
    """Run `write(tmp_folder) -> manifest extras` in a temporary folder and rename it into place.

    A concurrent build of the same plan (two ranks or nodes on shared storage) is harmless: the first
    rename wins and the other copy is discarded."""
    dest = root or plan.folder
    start, tmp = time.perf_counter(), None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_builds(dest)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))  # never shared
        as_if_created(tmp)  # mkdtemp's 0700 would hide the folder from the other users of shared storage
        (tmp / OWNER).write_text(process_identity(os.getpid()) or "")
        with gc_paused():
            extras = write(tmp)
        manifest = {
            "format": FORMAT,
            "corpus": plan.name,
            "inputs": plan.inputs,
            "prepare_seconds": round(time.perf_counter() - start, 2),
            **extras,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / OWNER).unlink()
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / MANIFEST).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
            raise UserError(
                f"the disk is full while preparing '{plan.name}' in '{dest.parent}': free space, or set "
                "TEXTGEN_CACHE (or --output) to a larger disk"
            ) from None
        if isinstance(exc, RuntimeError):
            raise
        raise UserError(
            f"cannot prepare '{plan.name}' in '{dest.parent}' ({exc}): check the files and folder"
        ) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def locate(plan: Plan, explicit: Path | None) -> Path | None:
    """The folder to use: `explicit` (checked against the plan), else the plan's folder if complete."""
    if explicit is not None:
        check_matches(explicit, read_manifest(explicit), plan)
        return explicit
    return plan.folder if (plan.folder / MANIFEST).is_file() else None


@dataclass
class Prepared:
    """An opened prepared folder: its manifest, and its files read with one-line errors when damaged."""

    folder: Path
    manifest: dict

    @property
    def sha256(self) -> dict[str, str]:
        """The source files' sha256 (for results files), without the registry layout that is also keyed."""
        return {k: v for k, v in self.manifest["inputs"]["files"].items() if k != "layout"}

    def has(self, split: str) -> bool:
        return split in self.manifest["splits"]

    def checked_ids(self, ids: np.ndarray, vocab_size: int, name: str) -> np.ndarray:
        """`ids` (the mapped file `name`), refused when an id lies outside the vocabulary, which would
        otherwise fail deep in training: one pass over the file when the folder is opened."""
        top = int(ids.max()) if ids.size else -1
        if top >= vocab_size:
            raise UserError(
                f"prepared file '{self.folder / name}' holds id {top}, outside the vocabulary of {vocab_size}: "
                "the folder is damaged; delete it and prepare the corpus again"
            )
        return ids

    def read(self, name: str, load):
        try:
            return load(self.folder / name)
        except (OSError, ValueError, RuntimeError, KeyError, EOFError):
            raise UserError(f"'{self.folder}/{name}' is missing or damaged: delete the folder, prepare again") from None


class KeptLines(Sequence[str]):
    """`lines[keep[i]]` for a filtered split: references indexed like the kept training pairs."""

    def __init__(self, lines: Sequence[str], keep: np.ndarray):
        self.lines, self.keep = lines, keep

    def __len__(self) -> int:
        return self.keep.size

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.lines[int(self.keep[i])]


def prepare(recipe, corpus: str | None = None, dest: Path | None = None, distill=None):
    """`textgen data prepare`: tokenize `corpus` (default: the recipe's) once with the recipe's settings into
    memory-mapped arrays at `dest` (default: in the cache, keyed by the data's sha256 and those settings) that
    later runs reuse. `distill(recipe)`: the distilled training targets of a seq2seq recipe that sets
    data.distill_from (tasks/distill.py; asked for once the corpus is settled). Returns the prepared data (its
    folder, manifest) and notes to show (sentencepiece)."""
    from dataclasses import replace

    if corpus:
        recipe = replace(recipe, data=replace(recipe.data, corpus=corpus))
    if dest is not None and dest.exists():
        raise UserError(f"'{dest}' already exists: give a new folder (prepared folders are never overwritten)")
    if recipe.task == "lm":
        from textgen.data.prepared_text import prepare_text

        return prepare_text(recipe, dest=dest), []
    from textgen.data.prepared_parallel import prepare_parallel
    from textgen.data.seqvocab import sentencepiece_note

    distilled = distill(recipe) if recipe.data.distill_from else None
    data = prepare_parallel(recipe, dest=dest, distilled=distilled)
    notes = [note] if (note := sentencepiece_note(recipe.data, data.vocabs)) else []
    made = f"training targets: the teachers' outputs in {distilled} (distill.json beside it says how they were made)"
    return data, notes + ([made] if distilled else [])
