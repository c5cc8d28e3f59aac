"""Corpus registry: mirror first, sha256 always; real corpora only where the mirror exists."""

import subprocess
import sys

import pytest

from tests.conftest import REPO
from textgen.data.parallel import hash_split
from textgen.data.registry import load_registry, sha256_of
from textgen.paths import mirror_dirs

MIRROR = next(iter(mirror_dirs()), None)
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="no corpus mirror (../shared/data or $TEXTGEN_DATA_MIRROR)")


def test_get_copies_from_mirror_and_verifies(cli, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "tinyshakespeare").mkdir(parents=True)
    (mirror / "tinyshakespeare" / "input.txt").write_text("not the real text\n")
    monkeypatch.setenv("TEXTGEN_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    result = cli("data", "get", "tinyshakespeare")
    assert result.code == 2 and "has sha256" in result.err and "expected 86c4e6aa" in result.err
    assert not (tmp_path / "cache" / "tinyshakespeare" / "input.txt").exists(), "a bad file must not stay cached"


def test_unknown_corpus_lists_known(cli):
    result = cli("data", "get", "nope")
    assert result.code == 2 and "tinyshakespeare" in result.err


def test_registry_entries_are_complete():
    for name, entry in load_registry().items():
        assert entry.description and entry.files, name
        for f in entry.files:
            assert f.url.startswith("https://") and len(f.sha256) == 64, (name, f.name)
        named = set(entry.splits.values()) | {entry.text} | {x for p in entry.pairs.values() for x in p}
        named |= {x for p in entry.refs.values() for x in p} | set(entry.hash_split.get("files", []))
        assert named - {""} <= {f.name for f in entry.files}, name


@needs_mirror
def test_real_tinyshakespeare_from_mirror(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    result = cli("data", "get", "tinyshakespeare")
    assert result.code == 0, result.err
    cached = tmp_path / "cache" / "tinyshakespeare" / "input.txt"
    assert sha256_of(cached) == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def test_hash_split_is_deduplicated_and_source_disjoint():
    src = [f"satz {i % 300}" for i in range(1000)]
    tgt = [f"sentence {i % 300} v{i // 500}" for i in range(1000)]
    splits = hash_split(src, tgt, 0.1, 0.1)
    train = set(splits["train"].sources)
    for name in ("valid", "test"):
        assert splits[name].sources and not (set(splits[name].sources) & train)
    pairs = [p for s in splits.values() for p in zip(s.sources, s.targets)]
    assert len(pairs) == len(set(pairs)) == 600  # 300 sources x 2 variants, duplicates dropped
    assert hash_split(src, tgt, 0.1, 0.1) == splits


def test_help_does_not_import_torch():
    code = ("import sys; sys.argv = ['textgen', '--help']\n"
            "from textgen.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('TORCH=%s' % ('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert "TORCH=False" in out.stderr
