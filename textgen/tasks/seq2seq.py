"""Seq2seq library functions: data preparation, the teacher-forced task, translation, loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from textgen.config import Recipe, differences, recipe_from_checkpoint
from textgen.data.prepared import MANIFEST, KeptLines, read_manifest
from textgen.data.prepared_parallel import ParallelArrays, PreparedParallel, prepare_parallel
from textgen.data.seqbatch import Batch, BatchPlan, collate, collate_arrays, token_budget_batches
from textgen.data.seqvocab import UNK, Vocabs, sentencepiece_note
from textgen.decode import settings
from textgen.decode.dispatch import decode_sources
from textgen.decode.ensemble import Ensemble
from textgen.errors import UserError
from textgen.metrics import score
from textgen.models import build_model, load_model_weights
from textgen.models.protocol import Seq2SeqDecoder, Seq2SeqModel
from textgen.objectives import OBJECTIVES
from textgen.objectives.base import Context, Loss
from textgen.objectives.common import teacher_forced_loss
from textgen.tasks.distill import distilled_targets
from textgen.train import checkpoint
from textgen.train.distributed import Dist, main_first


def encode_sources(vocabs: Vocabs, lines: list[str], max_tokens: int) -> list[list[int]]:
    out = []
    for line in lines:
        ids = vocabs.src.encode(line)
        out.append((ids[:max_tokens] if max_tokens else ids) or [UNK])  # an empty source still gets one token
    return out


class Seq2SeqTask:
    """Teacher-forced cross-entropy over token-budget batches; validation loss plus a decoded metric."""

    kind = "seq2seq"

    def __init__(self, recipe: Recipe, vocab: dict | None = None, dist: Dist = Dist(), prepared: Path | None = None):
        self.recipe = recipe
        d, t = recipe.data, recipe.train
        if t.word_dropout and recipe.objective.name != "xent":
            raise UserError(
                f"train.word_dropout is for the xent objective, not objective.name = {recipe.objective.name!r}: "
                "set it to 0"
            )
        init_payload = checkpoint.load(Path(recipe.init_from), kind="seq2seq") if recipe.init_from else None
        if init_payload is not None:
            check_same_model(init_payload, recipe)
        saved_vocab = vocab or (init_payload["vocab"] if init_payload else None)
        data = self._prepared(recipe, saved_vocab, prepared, dist)
        for split in ("train", "valid"):
            if not data.has(split):
                raise UserError(f"corpus '{d.corpus}' has no {split} split: train on a corpus that has one")
        self.vocabs, self.sha256 = data.vocabs, data.sha256
        fresh = vocab is None  # not a resume: init_from's weights are loaded below
        self.notes = _start_notes(recipe, init_payload if fresh else None, self.vocabs if saved_vocab is None else None)
        self.start_step = parent_steps(init_payload) if init_payload else 0
        self.train = data.split("train")
        src_lens, tgt_lens = self._lengths(self.train)
        too_long = np.maximum(src_lens, tgt_lens) > d.max_len if d.max_len else np.zeros(src_lens.size, dtype=bool)
        keep = (src_lens > 0) & (tgt_lens > 0) & ~too_long  # an empty side is nothing to learn from (and no keys)
        self.keep = np.flatnonzero(keep)  # kept pair k is row keep[k] of the prepared split
        if not self.keep.size:
            raise UserError(f"no training pair of '{d.corpus}' is within data.max_len = {d.max_len}: raise it")
        if too_long.any():
            self.notes.append(
                f"dropped {int(too_long.sum()):,} of {src_lens.size:,} training pairs with a side over data.max_len "
                f"= {d.max_len} tokens (--set data.max_len=N to keep longer ones)"
            )
        self.src_lens, self.tgt_lens = src_lens[self.keep], tgt_lens[self.keep]
        budget = t.max_tokens or 64 * max(int(self.src_lens.max()), int(self.tgt_lens.max()) + 1)
        self.plan = BatchPlan(self.src_lens, self.tgt_lens, budget)  # the same number of batches every epoch
        self.dist = dist
        if len(self.plan) < dist.world:
            raise UserError(
                f"{len(self.plan)} training batches cannot feed {dist.world} ranks: "
                "use fewer processes or a smaller train.max_tokens"
            )
        self.steps_per_epoch = len(self.plan) // dist.world  # rank r takes every world-th batch
        valid = data.split("valid")
        valid_lens, _ = self._lengths(valid)
        self.valid_src = [valid.src[i][:n].tolist() for i, n in enumerate(valid_lens.tolist())]
        self.valid_tgt = [valid.tgt[i].tolist() for i in range(len(valid.tgt))]
        self.valid_targets = [self.vocabs.tgt.normalize(t) for t in valid.targets[:]]  # as outputs come out
        self.budget = budget
        if recipe.model.share_embeddings and self.vocabs.src != self.vocabs.tgt:  # equal sizes are not enough
            raise UserError(
                f"model.share_embeddings needs one vocabulary for sources and targets, but they differ "
                f'({len(self.vocabs.src)}/{len(self.vocabs.tgt)} entries): use data.tokenizer = "spm" with '
                'data.target_vocab = "joint", or model.share_embeddings = false'
            )
        self.model = build_model(recipe.model, "seq2seq", len(self.vocabs.src), len(self.vocabs.tgt))
        if recipe.init_from and fresh:  # a fresh run that starts from another model's weights
            self.model.load_state_dict(init_payload["model"])
        self.model.to(dist.device)
        self.references = KeptLines(self.train.targets, self.keep)
        self.target_tokens = int(self.tgt_lens.sum()) + self.keep.size  # with EOS
        ctx = Context(
            recipe, self.vocabs.tgt, self.references, self.steps_per_epoch, self.target_tokens / self.keep.size
        )
        self.objective = OBJECTIVES[recipe.objective.name](ctx).to(dist.device)  # its baseline regressor
        self.train_log_columns = list(self.objective.log_columns)
        metric = t.valid_metric
        self.best_metric = "valid_loss" if metric == "loss" else f"valid_{metric}"
        self.higher_is_better = metric != "loss"
        self.valid_columns = ["valid_loss", "valid_ppl"] + ([] if metric == "loss" else [self.best_metric])
        self._epoch, self._batches = -1, []

    @staticmethod
    def _prepared(recipe: Recipe, vocab: dict | None, explicit: Path | None, dist: Dist) -> PreparedParallel:
        """Rank 0 prepares (or finds) the corpus first; the others then map the same folder (shared storage),
        or on a machine that cannot see it prepare their own copy with rank 0's vocabulary."""

        def distilled() -> Path | None:  # the teachers' outputs, decoded first when not cached by a single process
            if not recipe.data.distill_from:
                return None
            path = distilled_targets(recipe, dist.device, decode=not dist.active)
            if path is None:  # one rank decoding while the others wait would outlast the collectives' timeout
                raise UserError(
                    "a data-parallel run needs its teachers' outputs decoded first: run textgen data prepare "
                    f'--recipe RECIPE --set data.distill_from="{recipe.data.distill_from}" (with your other --set)'
                )
            return path

        def make() -> tuple[PreparedParallel, dict]:
            data = prepare_parallel(recipe, vocab, explicit, distilled=distilled())
            return data, data.vocabs.to_dict()

        def follow(shared: tuple[PreparedParallel, dict]) -> tuple[PreparedParallel, dict]:
            data, rank0_vocab = shared
            if (data.folder / MANIFEST).is_file():
                return PreparedParallel(data.folder, read_manifest(data.folder)), rank0_vocab
            return prepare_parallel(recipe, rank0_vocab, distilled=distilled()), rank0_vocab

        return main_first(dist, make, follow)[0]

    def _lengths(self, split: ParallelArrays) -> tuple[np.ndarray, np.ndarray]:
        """Source lengths after data.max_source_tokens truncation, and target lengths."""
        src = split.src.lengths()
        if self.recipe.data.max_source_tokens:
            src = np.minimum(src, self.recipe.data.max_source_tokens)
        return src, split.tgt.lengths()

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches, in order: a pure function of (seed, epoch), so resume needs no state.

        Examples of equal lengths are re-drawn into batches every epoch (ties broken at random, then
        the batch order shuffled); batch boundaries depend only on the sorted lengths, so every epoch
        has the same number of batches of the same shapes, but not the same sentences together."""
        g = torch.Generator().manual_seed(self.recipe.train.seed * 1000 + epoch)
        return self.plan.draw(g)

    def _batch(self, step: int) -> Batch:
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self.epoch_batches(epoch)
        ids = self._batches[index * self.dist.world + self.dist.rank]
        rows = self.keep[ids]
        sources = [self.train.src[r][:n] for r, n in zip(rows.tolist(), self.src_lens[ids].tolist())]
        targets = [self.train.tgt[r] for r in rows.tolist()]
        return collate_arrays(sources, targets, ids.tolist()).to(self.dist.device)

    def loss(self, step: int) -> Loss:
        return self.objective(self.model, self._batch(step), step=step)

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.model, self.objective]

    def param_groups(self) -> list[dict]:
        """The model at the scheduled lr; the objective's own parameters (a baseline regressor) at its fixed_lr."""
        groups = [{"params": list(self.model.parameters())}]
        extra = list(self.objective.parameters())
        if extra:
            groups.append({"params": extra, "fixed_lr": self.objective.fixed_lr})
        return groups

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        total, count = 0.0, 0
        lens = [len(s) for s in self.valid_src]
        for ids in token_budget_batches(lens, [len(x) for x in self.valid_tgt], self.budget):
            b = collate([self.valid_src[i] for i in ids], [self.valid_tgt[i] for i in ids], ids).to(self.dist.device)
            total += teacher_forced_loss(self.model, b).item()
            count += b.ntokens
        loss = total / count
        out = {"valid_loss": round(loss, 5), "valid_ppl": round(float(torch.tensor(loss).exp()), 3)}
        metric = self.recipe.train.valid_metric
        if metric != "loss":
            n = self.recipe.train.valid_subset or len(self.valid_src)
            # the recipe's length limits and bans, train.valid_beam's beam (a beam given turns MBR off)
            search = settings.resolve(self.recipe.decode, beam=self.recipe.train.valid_beam, nbest=1)
            decoded = decode_sources(self.model, self.vocabs.tgt.decode, self.valid_src[:n], search)
            values, _ = score([metric], [d.text for d in decoded], [self.valid_targets[:n]])
            out[self.best_metric] = values[metric]
        return out

    def vocab_dict(self) -> dict:
        return self.vocabs.to_dict()

    def state_dict(self) -> dict:
        return {"objective": self.objective.state_dict()}  # batch order is a function of (seed, epoch)

    def load_state_dict(self, state: dict, resharded: bool = False) -> None:
        self.objective.load_state_dict(state["objective"])  # the baseline regressor: the same on every rank

    def describe(self) -> str:
        return (
            f"vocab {len(self.vocabs.src)}/{len(self.vocabs.tgt)}, {self.keep.size:,} pairs, "
            f"{self.target_tokens:,} target tokens, batches of <= {self.budget} tokens"
        )


def _start_notes(recipe: Recipe, init_payload: dict | None, built: Vocabs | None) -> list[str]:
    """What a run starts from that its header does not show: the init_from checkpoint, distilled targets, and a
    vocabulary `built` from this corpus that is smaller than asked for."""
    notes = []
    if recipe.data.distill_from:
        what = "beside the original ones" if recipe.data.distill_targets == "both" else "in place of the original ones"
        notes.append(f"training targets: the outputs of {recipe.data.distill_from} ({what})")
    if init_payload is not None:
        notes.append(f"initialised from {recipe.init_from} (step {parent_steps(init_payload, own=True)})")
    if built is not None and (note := sentencepiece_note(recipe.data, built)):
        notes.append(note)
    return notes


def parent_steps(payload: dict, own: bool = False) -> int:
    """The updates an init_from checkpoint had: its own run's (own) or with its parents' (a fine-tune's global
    step continues from them). Kept and averaged checkpoints carry their step without a training state."""
    state = payload.get("train_state", {})
    step = state.get("step", payload.get("step", 0))
    return step if own else step + state.get("start_step", payload.get("start_step", 0))


SET_BY_THE_FINE_TUNE = {("data", "max_len"), ("data", "distill_from"), ("data", "distill_targets")}


def check_same_model(payload: dict, recipe: Recipe) -> None:
    """init_from must match the recipe's model shape and vocabulary settings; one error names every mismatch.
    data.max_len picks the training pairs and data.distill_* their targets, not the model or its vocabulary (which
    comes from the checkpoint), so a fine-tune sets its own: a distilled student fine-tunes on the references."""
    diff = [
        d
        for d in differences(recipe_from_checkpoint(payload), recipe, ("model", "data"))
        if d[:2] not in SET_BY_THE_FINE_TUNE
    ]
    if diff:
        sections = " and ".join(f"[{s}]" for s in dict.fromkeys(section for section, *_ in diff))
        sets = " ".join(f"--set {section}.{key}={json.dumps(value)}" for section, key, value, _ in diff)
        raise UserError(f"init_from checkpoint was trained with other {sections} settings: add {sets}")


def load_model(path: Path, device: torch.device = torch.device("cpu")) -> tuple[Seq2SeqModel, Vocabs, Recipe, dict]:
    payload = checkpoint.load(path, kind="seq2seq")
    return (*model_from_payload(payload, path, device), payload)


def load_models(paths: list[Path], device: torch.device) -> tuple[Seq2SeqDecoder, Vocabs, Recipe, dict]:
    """One checkpoint's model, or the ensemble of several (decode/ensemble.py), with the vocabularies, recipe and
    payload of the first: the members must share its vocabularies; its recipe's [decode] and data settings
    speak for the ensemble."""
    if len(paths) == 1:
        return load_model(paths[0], device)
    payloads = [checkpoint.load(p) for p in paths]
    for path, payload in zip(paths, payloads):
        if payload["kind"] != "seq2seq":
            raise UserError(f"an ensemble is of seq2seq checkpoints: '{path}' holds a {payload['kind']} model")
        if not checkpoint.same(payload["vocab"], payloads[0]["vocab"]):
            raise UserError(
                f"'{path}' has other vocabularies than '{paths[0]}': the members of an ensemble must share them "
                "(train each on the same corpus and data settings)"
            )
    members = [model_from_payload(payload, path, device) for path, payload in zip(paths, payloads)]
    _, vocabs, recipe = members[0]
    return Ensemble([model for model, _, _ in members]).eval(), vocabs, recipe, payloads[0]


def model_from_payload(payload: dict, path: Path, device: torch.device) -> tuple[Seq2SeqModel, Vocabs, Recipe]:
    recipe = recipe_from_checkpoint(payload)
    vocabs = Vocabs.from_dict(payload["vocab"])
    model = load_model_weights(
        recipe.model, "seq2seq", payload["model"], path, device, len(vocabs.src), len(vocabs.tgt)
    )
    return model, vocabs, recipe
