"""The corpus registry (package data: `textgen/corpora/registry.toml`) and `textgen data get`.

Mirror first, sha256 always.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from textgen.errors import UserError
from textgen.paths import as_if_created, cache_dir, mirror_dirs, registry_file


@dataclass(frozen=True)
class CorpusFile:
    name: str
    url: str
    sha256: str
    derived: bool = False  # extracted from an archive at `url`: only a mirror copy can be used


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    description: str
    license: str
    files: tuple[CorpusFile, ...]
    splits: dict[str, str]  # split name -> file name
    text: str = ""  # single-file corpora: the file split by `holdout`
    holdout: float = 0.0
    pairs: dict[str, list[str]] = field(default_factory=dict)  # split -> [source file, target file]
    refs: dict[str, list[str]] = field(default_factory=dict)  # split -> extra reference files
    hash_split: dict = field(default_factory=dict)  # {files: [src, tgt], valid: fraction, test: fraction}
    mirror: str = ""  # folder name inside the mirror (default: the corpus name)
    prepare: str = ""  # a preparation recipe (PREPARERS) that builds the files from `archive`
    archive: str = ""  # URL of the archive the files are prepared from


# registry `prepare` name -> module whose prepare(archive, folder) -> {file name: path} builds the files (imported
# only when a corpus needs preparing: the preparers pull in tokenizers)
PREPARERS = {"iwslt14": "textgen.data.iwslt14"}


def load_registry() -> dict[str, CorpusEntry]:
    raw = tomllib.loads(registry_file().read_text(encoding="utf-8"))
    entries = {}
    for name, body in raw.items():
        files = tuple(CorpusFile(f, v["url"], v["sha256"], v.get("derived", False)) for f, v in body["files"].items())
        entries[name] = CorpusEntry(
            name=name,
            description=body["description"],
            license=body.get("license", ""),
            files=files,
            splits=dict(body.get("splits", {})),
            text=body.get("text", ""),
            holdout=float(body.get("holdout", 0.0)),
            pairs=dict(body.get("pairs", {})),
            refs=dict(body.get("refs", {})),
            hash_split=dict(body.get("hash_split", {})),
            mirror=body.get("mirror", name),
            prepare=_preparer(name, body.get("prepare", "")),
            archive=body.get("archive", ""),
        )
    return entries


def _preparer(corpus: str, name: str) -> str:
    if name and name not in PREPARERS:
        raise UserError(f"registry entry {corpus}: prepare = {name!r} is unknown: choose from {', '.join(PREPARERS)}")
    return name


def lookup(name: str) -> CorpusEntry:
    registry = load_registry()
    if name not in registry:
        raise UserError(
            f"unknown corpus '{name}': known corpora are {', '.join(sorted(registry))} (or give a file path)"
        )
    return registry[name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_copy(write, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        as_if_created(tmp)  # mkstemp's 0600 would hide a shared cache's corpora from its other users
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download(url: str, out) -> None:
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), transient=True) as bar:
            task = bar.add_task(f"download {url.rsplit('/', 1)[-1]}", total=total)
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                bar.advance(task, len(block))


def fetch_file(corpus: str, item: CorpusFile, mirror_name: str = "") -> Path:
    """Return a verified local copy of one corpus file, copying from a mirror or downloading it."""
    dest = cache_dir() / corpus / item.name
    if dest.is_file() and sha256_of(dest) == item.sha256:
        return dest
    for mirror in mirror_dirs():
        source = mirror / (mirror_name or corpus) / item.name
        if source.is_file():
            with open(source, "rb") as src:
                _atomic_copy(lambda out: shutil.copyfileobj(src, out), dest)
            break
    else:
        if item.derived:
            raise UserError(
                f"{corpus}/{item.name} is extracted from {item.url}, which textgen cannot prepare by itself: "
                f"prepare it as {registry_file()} describes and put it under "
                f"$TEXTGEN_DATA_MIRROR/{mirror_name or corpus}/"
            )
        try:
            _atomic_copy(lambda out: _download(item.url, out), dest)
        except OSError as exc:
            raise UserError(
                f"cannot fetch {corpus}/{item.name} from {item.url} ({exc}); "
                f"put the file under $TEXTGEN_DATA_MIRROR/{corpus}/ and retry"
            ) from None
    actual = sha256_of(dest)
    if actual != item.sha256:
        dest.unlink()
        raise UserError(
            f"{corpus}/{item.name} has sha256 {actual}, expected {item.sha256}: "
            "the source or mirror holds a different file; replace it with the original"
        )
    return dest


def _verified(path: Path, item: CorpusFile) -> bool:
    """A file is usable when present and, if its sha256 is pinned, matching it."""
    return path.is_file() and (not item.sha256 or sha256_of(path) == item.sha256)


def fetch_prepared(entry: CorpusEntry) -> dict[str, Path]:
    """Corpora built from an archive (IWSLT14): mirror copies if complete, else download and prepare with the
    entry's preparer (PREPARERS)."""
    prepare = importlib.import_module(PREPARERS[entry.prepare]).prepare
    for folder in [*(m / entry.mirror for m in mirror_dirs()), cache_dir() / entry.name]:
        paths = {f.name: folder / f.name for f in entry.files}
        if all(_verified(paths[f.name], f) for f in entry.files):
            return paths
    archive = cache_dir() / entry.name / entry.archive.rsplit("/", 1)[-1]
    if not archive.is_file():
        try:
            _atomic_copy(lambda out: _download(entry.archive, out), archive)
        except OSError as exc:
            raise UserError(f"cannot download {entry.archive} ({exc}); put it at {archive} and retry") from None
    paths = prepare(archive, cache_dir() / entry.name)
    for item in entry.files:
        if item.sha256 and sha256_of(paths[item.name]) != item.sha256:
            raise UserError(
                f"prepared {entry.name}/{item.name} differs from the published file (sha256): "
                "the archive or the tokenizer version differs from the reference preparation"
            )
    return paths


def fetched(entry: CorpusEntry) -> bool:
    """Whether every file of a corpus is where `fetch` looks first: the cache, or, for corpora built from an
    archive, a mirror folder (used in place). Presence only: `fetch` verifies the sha256 when the files are used."""
    folders = [cache_dir() / entry.name] + ([m / entry.mirror for m in mirror_dirs()] if entry.prepare else [])
    return any(all((folder / f.name).is_file() for f in entry.files) for folder in folders)


def fetch(name: str) -> dict[str, Path]:
    """Fetch every file of a registered corpus; returns file name -> verified local path."""
    entry = lookup(name)
    if entry.prepare:
        return fetch_prepared(entry)
    return {item.name: fetch_file(name, item, entry.mirror) for item in entry.files}
