"""results/ is one folder per study, each with its README, and an index: nothing loose at the top, hypotheses
gzip-compressed inside their study, and every study listed in the index."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"
STUDIES = sorted(p for p in RESULTS.iterdir() if p.is_dir())


def test_nothing_loose_at_the_top_but_the_index():
    assert [p.name for p in RESULTS.iterdir() if p.is_file()] == ["README.md"]
    assert STUDIES


def test_every_study_has_a_readme_and_is_in_the_index():
    index = (RESULTS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([^/)]+)/?\)", index))
    assert linked == {p.name for p in STUDIES}
    for study in STUDIES:
        assert (study / "README.md").is_file(), study.name


def test_hypotheses_are_compressed():
    loose = [p for p in RESULTS.rglob("*") if p.is_file() and p.parent.name == "hyps" and p.suffix != ".gz"]
    assert not loose, loose[:5]
