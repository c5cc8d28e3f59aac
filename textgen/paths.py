"""Where the project's data files (recipes, corpus registry), mirrors and cache live, and the checks and
permissions of the files and folders textgen writes."""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path

from textgen.errors import UserError

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent  # the checkout when running from one; site-packages when installed


def package_dir(name: str) -> Path:
    """A folder shipped inside the package (`recipes`, `corpora`), found through importlib.resources.

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
    """The corpus registry (`textgen/corpora/registry.toml`)."""
    return package_dir("corpora") / "registry.toml"


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


def umask() -> int:
    """The process's umask (os.umask can only be read by setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_if_created(path: Path) -> None:
    """Give a file or folder made by `tempfile` (0600 / 0700, private) the permissions a plain open() or
    mkdir() would have (0666 / 0777 less the umask), so results on shared storage are readable as the
    user's umask intends."""
    full = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, full & ~umask())


def check_writable_folder(folder: Path) -> None:
    """Make `folder` if needed and fail now, not after an hour of work, if no file can be created in it."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"cannot write in '{folder}' ({exc.strerror}): choose a writable folder") from None


def output_file(path: str | Path, what: str, example: str, overwrite: bool = True, exists_hint: str = "") -> Path:
    """A file a command will write, checked before any work starts (`what` names it in errors, e.g. "-o").

    Refused: a path naming a folder (an existing one, or any path ending in '/'), an existing thing that is
    not a regular file (a device such as /dev/null, a fifo: never replaced), an existing file unless
    `overwrite` (`exists_hint` then says how to proceed), and a folder where nothing can be written.
    """
    text = str(path)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise UserError(f"{what} '{text}' names a folder: give a file path such as '{path / example}'")
    if path.exists() and not path.is_file():
        raise UserError(f"{what} '{text}' is not a regular file (a device, fifo or socket): give a file path")
    if path.is_file() and not overwrite:
        raise UserError(f"{what} '{text}' already exists: {exists_hint or 'give a new path'}")
    check_writable_folder(path.parent)
    return path
