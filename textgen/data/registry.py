"""The corpus registry (`data/registry.toml`) and `textgen data get`: mirror first, sha256 always."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from textgen.errors import UserError
from textgen.paths import cache_dir, mirror_dirs, project_dir


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


def load_registry() -> dict[str, CorpusEntry]:
    path = project_dir("data") / "registry.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
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
        )
    return entries


def lookup(name: str) -> CorpusEntry:
    registry = load_registry()
    if name not in registry:
        raise UserError(f"unknown corpus '{name}': known corpora are {', '.join(sorted(registry))} (or give a file path)")
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
                f"prepare it as data/registry.toml describes and put it under $TEXTGEN_DATA_MIRROR/{mirror_name or corpus}/"
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


def fetch(name: str) -> dict[str, Path]:
    """Fetch every file of a registered corpus; returns file name -> verified local path."""
    entry = lookup(name)
    return {item.name: fetch_file(name, item, entry.mirror) for item in entry.files}
