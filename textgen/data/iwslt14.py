"""Prepare IWSLT14 de-en as Ranzato et al. (2016) and fairseq's prepare-iwslt14.sh do.

From the 2014-01 TED archive `de-en.tgz`: drop the metadata lines of train.tags, Moses-tokenize
(aggressive hyphen splitting, XML escapes) and lowercase; keep training pairs of 1..50 tokens with a
length ratio <= 1.5; every 23rd pair is validation; test = dev2010 + tedx.dev2012 + tst2010..2012.
The prepared test set is checked against the sha256 of the published one (data/registry.toml).
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

from textgen.errors import UserError

TEST_PARTS = (
    "IWSLT14.TED.dev2010",
    "IWSLT14.TEDX.dev2012",
    "IWSLT14.TED.tst2010",
    "IWSLT14.TED.tst2011",
    "IWSLT14.TED.tst2012",
)
DROP = ("<url>", "<talkid>", "<keywords>")
SEG = re.compile(r'<seg id="\d+">\s*(.*?)\s*</seg>')


def _tokenizer(lang: str):
    try:
        from sacremoses import MosesTokenizer
    except ImportError:
        raise UserError("preparing IWSLT14 needs sacremoses: pip install sacremoses") from None
    moses = MosesTokenizer(lang=lang)
    return lambda line: moses.tokenize(line, aggressive_dash_splits=True, escape=True, return_str=True).lower()


def train_lines(raw: str) -> list[str]:
    """Sentences of a train.tags file: metadata lines dropped, title/description tags stripped."""
    out = []
    for line in raw.splitlines():
        if any(tag in line for tag in DROP):
            continue
        for tag in ("<title>", "</title>", "<description>", "</description>"):
            line = line.replace(tag, "")
        out.append(line.strip())
    return out


def xml_segments(raw: str) -> list[str]:
    return [m.group(1).replace("\u2019", "'") for line in raw.splitlines() if (m := SEG.search(line))]


def clean(src: list[str], tgt: list[str], max_len: int = 50, ratio: float = 1.5) -> tuple[list[str], list[str]]:
    """clean-corpus-n.perl: both sides 1..max_len tokens and neither more than `ratio` times the other."""
    keep_src, keep_tgt = [], []
    for s, t in zip(src, tgt):
        ns, nt = len(s.split()), len(t.split())
        if 1 <= ns <= max_len and 1 <= nt <= max_len and ns <= ratio * nt and nt <= ratio * ns:
            keep_src.append(s)
            keep_tgt.append(t)
    return keep_src, keep_tgt


def prepare(archive: Path, out_dir: Path) -> dict[str, Path]:
    """Write train/valid/test.{de,en} under out_dir from the de-en.tgz archive; returns name -> path."""
    members = {}
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if m.isfile():
                members[Path(m.name).name] = tar.extractfile(m).read().decode("utf-8")
    tok = {lang: _tokenizer(lang) for lang in ("de", "en")}
    try:
        train = {lang: [tok[lang](x) for x in train_lines(members[f"train.tags.de-en.{lang}"])] for lang in tok}
        test = {
            lang: [tok[lang](x) for part in TEST_PARTS for x in xml_segments(members[f"{part}.de-en.{lang}.xml"])]
            for lang in tok
        }
    except KeyError as missing:
        raise UserError(f"'{archive}' lacks {missing}: it is not the 2014-01 IWSLT de-en archive") from None
    de, en = clean(train["de"], train["en"])
    splits = {
        "train": ([x for i, x in enumerate(de, 1) if i % 23], [x for i, x in enumerate(en, 1) if i % 23]),
        "valid": ([x for i, x in enumerate(de, 1) if i % 23 == 0], [x for i, x in enumerate(en, 1) if i % 23 == 0]),
        "test": (test["de"], test["en"]),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, (src, tgt) in splits.items():
        for lang, lines in (("de", src), ("en", tgt)):
            path = out_dir / f"{split}.{lang}"
            path.write_text("".join(line + "\n" for line in lines))
            written[path.name] = path
    return written
