"""OBJECTIVES: name → class. Every objective is called as objective(model, batch, *, step) -> Loss."""

from __future__ import annotations

from textgen.objectives.dad import DataAsDemonstrator
from textgen.objectives.e2e import EndToEnd
from textgen.objectives.mixer import Mixer, PureReinforce, SelfCritical
from textgen.objectives.mrt import MinimumRisk
from textgen.objectives.xent import Xent

OBJECTIVES = {
    "xent": Xent,
    "dad": DataAsDemonstrator,
    "e2e": EndToEnd,
    "mixer": Mixer,
    "reinforce": PureReinforce,
    "scst": SelfCritical,
    "mrt": MinimumRisk,
}
