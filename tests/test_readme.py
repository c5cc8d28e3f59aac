"""The README's results table against the result files it cites: every figure it prints must be the value in the
JSON file its row's study holds, rounded as printed.

Table format (README.md, under `## Results`): `| what | figure | [study](results/STUDY/) |`, and each measured
figure followed in its cell by `<!-- FILE.json:dotted.key -->`, FILE inside that study folder; integers in the key
index lists. The figure is the last number written before the comment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMENT = re.compile(r"<!--\s*(?P<file>[^:\s]+\.json):(?P<key>\S+)\s*-->")
NUMBER = re.compile(r"[+\-−]?\d[\d,]*(?:\.\d+)?")
STUDY = re.compile(r"\]\((?:\./)?results/(?P<study>[^/)]+)/?\)")


def results_table(readme: str) -> list[list[str]]:
    """The cells of the body rows of the first table under the `## Results` heading."""
    section = readme.split("\n## Results", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def lookup(data, key: str):
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def figures(cell: str) -> list[tuple[str, str, str]]:
    """(printed number, file, key) for every annotated figure in a cell: the last number before each comment."""
    out, start = [], 0
    for match in COMMENT.finditer(cell):
        numbers = NUMBER.findall(cell[start : match.start()].replace("**", ""))
        assert numbers, f"no number before {match.group(0)} in {cell!r}"
        out.append((numbers[-1], match["file"], match["key"]))
        start = match.end()
    return out


def as_printed(value: float, printed: str) -> str:
    """`value` written with `printed`'s decimals, sign and thousands separators."""
    digits = printed.split(".")[1] if "." in printed else ""
    text = f"{abs(value):,.{len(digits)}f}" if "," in printed else f"{abs(value):.{len(digits)}f}"
    sign = "-" if value < 0 and float(text.replace(",", "")) != 0 else ("+" if printed[0] == "+" else "")
    return sign + text


def normalised(printed: str) -> str:
    return printed.replace("−", "-")


ROWS = results_table((ROOT / "README.md").read_text())


def test_the_results_table_has_one_to_eight_rows():
    assert 1 <= len(ROWS) <= 8


@pytest.mark.parametrize("row", ROWS, ids=[row[0][:40] for row in ROWS])
def test_every_figure_is_its_json_value_as_printed(row):
    studies = {m["study"] for m in STUDY.finditer(row[-1])}
    assert len(studies) == 1, f"the last cell must link to one results/STUDY/ folder: {row[-1]!r}"
    folder = ROOT / "results" / studies.pop()
    assert (folder / "README.md").is_file(), f"{folder} has no README.md"
    found = [figure for cell in row for figure in figures(cell)]
    assert found, f"no annotated figure in {row}"
    for printed, file, key in found:
        value = lookup(json.loads((folder / file).read_text()), key)
        assert as_printed(float(value), printed) == normalised(printed), f"{file}:{key} is {value}, printed {printed}"


def test_figures_are_checked_as_printed():
    """The comparison itself: rounding, signs and separators as a reader sees them, and a wrong figure fails."""
    cell = "**+1.23** <!-- a.json:x -->, then 2,678 <!-- a.json:y.0 --> and −0.36 <!-- b.json:z -->"
    assert figures(cell) == [("+1.23", "a.json", "x"), ("2,678", "a.json", "y.0"), ("−0.36", "b.json", "z")]
    assert as_printed(1.2251, "+1.23") == "+1.23" and as_printed(2678.4, "2,678") == "2,678"
    assert as_printed(-0.357, "−0.36") == normalised("−0.36") and as_printed(1.51036, "1.510") == "1.510"
    assert as_printed(1.303, "1.31") != "1.31"
    assert lookup({"rows": [{"a": 1}, {"a": 2}]}, "rows.1.a") == 2
