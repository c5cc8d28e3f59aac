"""Where the project's data files (recipes, corpus registry) and mirrors live."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent  # the checkout when running from one; site-packages when installed


def package_dir(name: str) -> Path:
    """A folder shipped inside the package (`recipes`, `registry`), found through importlib.resources.

    Never looked up in the working directory: a user's own `recipes/` or `data/` folder cannot shadow it.
    The checkout's top-level `recipes/` and `data/` are links to these folders.
    """
    folder = resources.files("textgen") / name
    if not isinstance(folder, Path):  # a zip import: textgen must be installed as files (pip always does)
        raise RuntimeError(f"textgen's package data '{name}' is not on the file system ({folder})")
    return folder


def recipes_dir() -> Path:
    """The built-in recipes (`textgen/recipes/*.toml`)."""
    return package_dir("recipes")


def registry_file() -> Path:
    """The corpus registry (`textgen/registry/registry.toml`)."""
    return package_dir("registry") / "registry.toml"


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
