"""OBJECTIVES: name -> objective class (objectives/base.py says what one is). A new objective is its own file
and one line here; its name is also one of config.CHOICES["objective.name"] (a test keeps the two equal), and
its settings, if it has any, are its own table of ObjectiveConfig."""

from __future__ import annotations

from textgen.objectives.dad import DataAsDemonstrator
from textgen.objectives.e2e import EndToEnd
from textgen.objectives.mixer import Mixer, PureReinforce, SelfCritical
from textgen.objectives.mrt import MinimumRisk
from textgen.objectives.rank import Rank
from textgen.objectives.xent import Xent

OBJECTIVES = {
    "xent": Xent,
    "dad": DataAsDemonstrator,
    "e2e": EndToEnd,
    "mixer": Mixer,
    "reinforce": PureReinforce,
    "scst": SelfCritical,
    "mrt": MinimumRisk,
    "rank": Rank,
}
