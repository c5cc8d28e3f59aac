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
            pinned = len(f.sha256) == 64 or (entry.prepare and f.sha256 == "")  # prepared files may be unpinned
            assert f.url.startswith("https://") and pinned, (name, f.name)
        named = set(entry.splits.values()) | {entry.text} | {x for p in entry.pairs.values() for x in p}
        named |= {x for p in entry.refs.values() for x in p} | set(entry.hash_split.get("files", []))
        assert named - {""} <= {f.name for f in entry.files}, name


@needs_mirror
def test_real_tinyshakespeare_from_mirror(cli, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    old = os.umask(0o022)
    try:
        result = cli("data", "get", "tinyshakespeare")
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    cached = tmp_path / "cache" / "tinyshakespeare" / "input.txt"
    assert sha256_of(cached) == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert cached.stat().st_mode & 0o777 == 0o644  # the umask's, not a temporary file's 0600: a cache can be shared


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
    code = (
        "import sys; sys.argv = ['textgen', '--help']\n"
        "from textgen.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('TORCH=%s' % ('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert "TORCH=False" in out.stderr


def make_iwslt_archive(path, n_train=60):
    import io
    import tarfile

    train = {
        "de": [
            "<url>http://ted.com/x</url>",
            "<keywords>talks</keywords>",
            "<talkid>1</talkid>",
            "<title>Ein Titel</title>",
        ],
        "en": [
            "<url>http://ted.com/x</url>",
            "<keywords>talks</keywords>",
            "<talkid>1</talkid>",
            "<title>A Title</title>",
        ],
    }
    for i in range(n_train):
        train["de"].append(f"Das ist ein alt-gewachsener Satz Nummer {i}.")
        train["en"].append(f"It's an old-growth sentence number {i}.")
    train["de"].append("kurz")  # ratio 1:7 -> dropped by cleaning
    train["en"].append("this one is far far too long for its source")
    files = {f"de-en/train.tags.de-en.{lang}": "\n".join(lines) + "\n" for lang, lines in train.items()}
    from textgen.data.iwslt14 import TEST_PARTS

    for part in TEST_PARTS:
        for lang, text in (("de", "Hallo Welt"), ("en", "Hello world’s end")):
            files[f"de-en/{part}.de-en.{lang}.xml"] = (
                f'<mteval>\n<doc docid="1">\n<seg id="1"> {text} {part} </seg>\n</doc>\n</mteval>\n'
            )
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_iwslt14_preparation_follows_the_reference_pipeline(tmp_path):
    from textgen.data.iwslt14 import prepare

    make_iwslt_archive(tmp_path / "de-en.tgz")
    out = prepare(tmp_path / "de-en.tgz", tmp_path / "prep")
    lines = {name: path.read_text().splitlines() for name, path in out.items()}
    assert len(lines["train.en"]) + len(lines["valid.en"]) == 61  # title + 60 sentences; the 1:7 pair dropped
    assert len(lines["valid.en"]) == 61 // 23 and len(lines["train.de"]) == len(lines["train.en"])
    assert lines["train.en"][0] == "a title"
    assert lines["train.en"][1] == "it &apos;s an old @-@ growth sentence number 0 ."
    assert lines["train.de"][1] == "das ist ein alt @-@ gewachsener satz nummer 0 ."
    assert lines["test.en"][0] == "hello world &apos;s end iwslt14.ted.dev2010" and len(lines["test.en"]) == 5
    assert not any("<url>" in x or "talkid" in x for x in lines["train.en"])


def test_iwslt14_fetch_verifies_the_prepared_test_set(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTGEN_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "iwslt14").mkdir(parents=True)
    make_iwslt_archive(tmp_path / "cache" / "iwslt14" / "de-en.tgz")  # a stand-in archive: no download
    result = cli("data", "get", "iwslt14")
    assert result.code == 2 and "differs from the published file" in result.err


def test_archive_corpora_are_built_by_the_preparer_their_entry_names(tmp_path, monkeypatch):
    """`prepare = NAME` in the registry picks PREPARERS[NAME]; an unknown name is refused when the registry is read."""
    import sys
    import types

    from textgen.data import registry
    from textgen.errors import UserError

    built = []
    fake = types.ModuleType("fake_preparer")
    fake.prepare = lambda archive, folder: built.append(archive.name) or {"x.txt": folder / "x.txt"}
    monkeypatch.setitem(sys.modules, "fake_preparer", fake)
    monkeypatch.setitem(registry.PREPARERS, "fake", "fake_preparer")
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "toy").mkdir(parents=True)
    (tmp_path / "cache" / "toy" / "toy.tgz").write_bytes(b"archive")
    entry = registry.CorpusEntry(
        "toy", "", "", (registry.CorpusFile("x.txt", "", ""),), {}, prepare="fake", archive="https://x/toy.tgz"
    )
    assert registry.fetch_prepared(entry) == {"x.txt": tmp_path / "cache" / "toy" / "x.txt"}
    assert built == ["toy.tgz"]
    with pytest.raises(UserError, match="prepare = 'nope' is unknown: choose from iwslt14"):
        registry._preparer("toy", "nope")


def test_one_file_corpus_gives_distinct_validation_and_test_text():
    """nanoGPT's 90% training cut, then the tail halved: the text that picks checkpoints is not the test text."""
    from textgen.data.corpus import split_tail

    text = "".join(f"line {i}\n" for i in range(1000))
    parts = split_tail(text, 0.1)
    assert parts["train"] == text[: int(len(text) * 0.9)]
    assert parts["train"] + parts["valid"] + parts["test"] == text
    assert parts["valid"] and parts["test"] and parts["valid"] != parts["test"]
    assert abs(len(parts["valid"]) - len(parts["test"])) <= 1


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 22])
def test_line_chunks_split_lines_across_block_boundaries(tmp_path, monkeypatch, block):
    """Blocks that end mid-line and between CR and LF, gzip, a BOM, a missing last newline, empty lines and
    empty files: the lines come out whole, in lists of the asked size (read_lines flattens them)."""
    import gzip

    from textgen.data import parallel

    monkeypatch.setattr(parallel, "BLOCK_CHARS", block)
    texts = {
        "ein Hund\nzwei Katzen\n\ndrei\n": ["ein Hund", "zwei Katzen", "", "drei"],
        "\ufeffa\r\nb b\r\n\r\nc\r\nd": ["a", "b b", "", "c", "d"],
        "x\ny\nz": ["x", "y", "z"],
        "nur eine Zeile": ["nur eine Zeile"],
        "\n\n": ["", ""],
        "a\r": ["a"],
        "": [],
    }
    for i, (text, lines) in enumerate(texts.items()):
        for path, data in ((tmp_path / f"{i}", text.encode()), (tmp_path / f"{i}.gz", gzip.compress(text.encode()))):
            path.write_bytes(data)
            chunks = list(parallel.stream_line_chunks(path, size=2))
            assert [len(c) for c in chunks] == [2] * (len(lines) // 2) + [1] * (len(lines) % 2), text
            assert [line for c in chunks for line in c] == lines == parallel.read_lines(path), text


def test_pair_chunks_report_misaligned_files_and_empty_lines_with_their_line_numbers(tmp_path):
    from textgen.data.parallel import stream_pair_chunks
    from textgen.errors import UserError

    src, tgt = tmp_path / "s", tmp_path / "t"
    src.write_text("".join(f"s{i}\n" for i in range(7)))
    tgt.write_text("".join(f"t{i}\n" for i in range(5)))
    with pytest.raises(UserError, match="has 7 lines but .* has 5: parallel files must be line-aligned"):
        list(stream_pair_chunks(src, tgt, size=2))
    tgt.write_text("".join(f"t{i}\n" if i != 5 else " \t\n" for i in range(7)))
    with pytest.raises(UserError, match="'.*t' line 6 is empty"):
        list(stream_pair_chunks(src, tgt, size=2))
    tgt.write_text("".join(f"t{i}\n" for i in range(7)))
    got = list(stream_pair_chunks(src, tgt, size=3))
    assert [len(s) for s, _ in got] == [3, 3, 1] and got[2] == (["s6"], ["t6"])


def test_help_names_every_data_command_and_flags_show_no_value(cli):
    top = cli("--help")
    assert top.code == 0
    data_row = next(line for line in top.out.splitlines() if " data " in line)
    assert "prepare" in data_row, data_row
    for args in (("train", "--help"), ("eval", "--help"), ("decode", "--help"), ("--help",)):
        shown = cli(*args)
        assert shown.code == 0 and "--help" in shown.out, shown.err
        assert "<bool>" not in shown.out, shown.out  # a flag (--json, --sample, --help) takes no value
    assert "<path>" in cli("train", "--help").out  # options that take a value still show its type


def test_data_list_says_which_corpora_are_fetched(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TEXTGEN_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    (tmp_path / "cache" / "ptb").mkdir(parents=True)
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
        (tmp_path / "cache" / "ptb" / name).write_text("a b\n")
    (tmp_path / "cache" / "tinyshakespeare").mkdir()  # an empty folder is not a fetched corpus
    result = cli("data", "list")
    assert result.code == 0, result.err
    rows = {line.split()[0]: line.split()[1] for line in result.out.splitlines()[1:]}
    assert result.out.splitlines()[0].split()[:2] == ["corpus", "fetched"]
    assert rows["ptb"] == "yes" and rows["tinyshakespeare"] == "no" and rows["multi30k"] == "no"


# --- corpus files: gzip everywhere, errors that name the line -------------------------------------------


def test_a_gzipped_language_model_corpus_reads_like_the_plain_file(tmp_path):
    import gzip

    from textgen.data.corpus import read_text

    text = "Größe und Maß\r\nzweite Zeile\n" * 100
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(text.encode()))
    assert read_text(tmp_path / "c.txt.gz") == read_text(tmp_path / "c.txt") == text.replace("\r\n", "\n")


def test_non_utf8_bytes_are_reported_by_line_number(tmp_path, monkeypatch):
    import gzip

    from textgen.data import parallel
    from textgen.data.corpus import read_text
    from textgen.errors import UserError

    monkeypatch.setattr(parallel, "BLOCK_CHARS", 64)  # the bad byte lies several blocks in
    lines = [f"Zeile {i}".encode() for i in range(1, 801)]
    lines[500] = "Größe".encode("latin-1")  # line 501
    raw = b"\n".join(lines) + b"\n"
    for name, data in (("p.txt", raw), ("p.txt.gz", gzip.compress(raw))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError, match=r"line 501 is not UTF-8"):
            parallel.read_lines(tmp_path / name)
        with pytest.raises(UserError, match=r"line 501 is not UTF-8"):
            read_text(tmp_path / name)


def test_a_truncated_gzip_file_is_a_one_line_error_naming_it(cli, tmp_path):
    import gzip

    from textgen.data.corpus import read_text
    from textgen.data.parallel import read_lines
    from textgen.errors import UserError

    whole = gzip.compress("".join(f"Satz {i}\n" for i in range(5000)).encode())
    (tmp_path / "cut.de.gz").write_bytes(whole[: len(whole) // 2])
    for read in (read_lines, read_text):
        with pytest.raises(UserError, match=r"'.*cut.de.gz' is a truncated gzip file: download it again"):
            read(tmp_path / "cut.de.gz")
    (tmp_path / "bad.gz").write_bytes(whole[:10] + b"\x00" * 64)
    with pytest.raises(UserError, match=r"'.*bad.gz' is not a valid gzip file"):
        read_lines(tmp_path / "bad.gz")


# --- a checkpoint's corpus, seen from `textgen eval` ---------------------------------------------------------


def test_eval_finds_the_training_files_from_another_folder_and_says_when_they_are_gone(cli, tmp_path, monkeypatch):
    from tests.test_cli_errors import seq2seq_checkpoint

    ckpt = tmp_path / seq2seq_checkpoint(cli, tmp_path)  # corpus "s.txt,t.txt;s.txt,t.txt", relative
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scored = cli("eval", ckpt, "--split", "valid", "--hyp-out", "h.txt")
    assert scored.code == 0 and "bleu4" in scored.out, scored.err
    (tmp_path / "s.txt").rename(tmp_path / "moved.txt")
    gone = cli("eval", ckpt, "--split", "valid", "--hyp-out", "h.txt")
    assert gone.code == 2 and "s.txt" in gone.err and "--data" in gone.err, gone.err
    given = cli("eval", ckpt, "--split", "valid", "--data", f"{tmp_path}/moved.txt,{tmp_path}/t.txt", "--hyp-out", "h")
    assert given.code == 0 and "bleu4" in given.out, given.err  # one pair of files: the split asked for


@pytest.mark.parametrize("task", ["lm", "seq2seq"])
def test_eval_warns_when_the_scored_files_changed_since_training(cli, tmp_path, tiny_recipe, task):
    from tests.test_cli_errors import lm_checkpoint, seq2seq_checkpoint

    if task == "lm":
        ckpt, edited, args = lm_checkpoint(cli, tiny_recipe), tmp_path / "tiny.txt", ()
    else:
        ckpt, edited, args = seq2seq_checkpoint(cli, tmp_path), tmp_path / "t.txt", ("--hyp-out", "h.txt")
    same = cli("eval", ckpt, "--split", "valid", *args)
    assert same.code == 0 and "warning" not in same.err, same.err
    edited.write_text("".join(line[::-1] + "\n" for line in edited.read_text().splitlines()))  # same symbols
    changed = cli("eval", ckpt, "--split", "valid", *args)
    assert changed.code == 0, changed.err
    warnings = [line for line in changed.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "changed since" in warnings[0] and "not comparable" in warnings[0], changed.err
