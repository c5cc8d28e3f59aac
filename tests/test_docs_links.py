"""Every relative link in README.md and docs/*.md leads somewhere: the file or folder exists, and a `#anchor`
names a heading of the linked page (GitHub's heading slugs); every repository path the pages name in code
(`textgen/decode/mbr.py`, `tests/test_search.py`) exists, and every Python name they give (`textgen.errors.UserError`)
imports. Files move between folders; this keeps the pages
that point at them honest."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
PY_NAME = re.compile(r"`(textgen(?:\.\w+)+)")
REPO_PATH = re.compile(r"`((?:textgen|tests|benchmarks|experiments)/[\w./-]*)`")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, markup and punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m[1]) for m in re.finditer(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.M)}


def links(page: Path) -> list[str]:
    return [m[1] for m in LINK.finditer(FENCE.sub("", page.read_text())) if "://" not in m[1]]


def test_slug_follows_githubs_rules():
    assert slug("## `textgen data list`".lstrip("# ")) == "textgen-data-list"
    assert slug("Fine-tuning the `translate-multi30k` model ([finetune-multi30k](../results/x/))") == (
        "fine-tuning-the-translate-multi30k-model-finetune-multi30k"
    )
    assert slug("Precision, devices & bf16") == "precision-devices--bf16"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page):
    broken = []
    for link in links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link} (no heading #{anchor})")
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_repository_paths_named_in_code_exist(page):
    missing = sorted({m[1] for m in REPO_PATH.finditer(page.read_text()) if not (REPO / m[1]).exists()})
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def resolves(dotted: str) -> bool:
    """The longest importable module prefix of `dotted`, then attributes for the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_names_in_code_import(page):
    missing = sorted({m[1] for m in PY_NAME.finditer(page.read_text()) if not resolves(m[1])})
    assert not missing, f"{page.name} names Python objects that do not import: {missing}"
