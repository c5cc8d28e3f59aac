"""Where the project's data files (recipes, corpus registry) and mirrors live."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def project_dir(name: str) -> Path:
    """`recipes/` or `data/`: the one next to the working directory wins over the installed one."""
    local = Path.cwd() / name
    return local if local.is_dir() else REPO_ROOT / name


def mirror_dirs() -> list[Path]:
    """Folders holding byte-identical copies of corpora, searched before any download."""
    env = os.environ.get("TEXTGEN_DATA_MIRROR")
    if env:
        return [Path(env)]
    candidates = [Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"]
    return [p for p in dict.fromkeys(c.resolve() for c in candidates) if p.is_dir()]


def cache_dir() -> Path:
    """Where fetched corpora are kept: $TEXTGEN_CACHE, else the XDG user cache."""
    env = os.environ.get("TEXTGEN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "textgen"
