"""The Task protocol: all the training loop knows of a task (language model, seq2seq). A task supplies the loss
for step s, its own validation and the state a resume needs; the loop never looks further into it."""

from __future__ import annotations

from typing import Protocol

import torch

from textgen.objectives.base import Loss


class Task(Protocol):
    kind: str
    model: torch.nn.Module
    steps_per_epoch: int
    sha256: dict[str, str]
    best_metric: str  # validation key that picks the best checkpoint
    higher_is_better: bool
    valid_columns: list[str]

    train_log_columns: list[str]  # names of Loss.logs values averaged into metrics.csv
    notes: list[str]  # one-line facts about the data and the start (pairs dropped, init_from), printed first
    start_step: int  # updates the weights had before this run (its init_from lineage's), where its curves go on

    def loss(self, step: int) -> Loss: ...
    def trainable_modules(self) -> list[torch.nn.Module]: ...
    def param_groups(self) -> list[dict]: ...
    def validate(self) -> dict[str, float]: ...
    def vocab_dict(self) -> dict: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict, resharded: bool = False) -> None: ...
    def describe(self) -> str: ...
