"""The public Python surface: `textgen.load(path)` gives a Translator or a LanguageModel.

Lists in, lists out, batched inside, repeatable with a seed; bad input raises the same `UserError`
the CLI prints. The CLI's decode, sample and score commands call these methods, so there is one path.

    >>> import textgen
    >>> mt = textgen.load("checkpoints/translate-multi30k.pt")
    >>> mt.translate(["Ein Hund läuft."], beam=5)
    ['A dog is running.']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from textgen import checkpoint
from textgen.config import Recipe, replace_given
from textgen.decode.sampling import check_sampling_args
from textgen.device import resolve_device
from textgen.errors import UserError
from textgen.precision import check_precision


@dataclass(frozen=True)
class Scored:
    """Log-probabilities (natural log) the model gives to each token of a given output (seq2seq: EOS included)."""

    tokens: list[str]
    logprobs: list[float]

    @property
    def total(self) -> float:
        return float(sum(self.logprobs))

    @property
    def mean(self) -> float:
        return self.total / max(1, len(self.logprobs))

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "tokens": len(self.tokens),
            "mean": self.mean,
            "per_token": [{"token": t, "logprob": p} for t, p in zip(self.tokens, self.logprobs)],
        }


def _texts(value, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{what} must be a list of strings, got {type(value).__name__}")
    return list(value)


class Translator:
    """A seq2seq checkpoint (translation or summarization): translate and score."""

    kind = "seq2seq"

    def __init__(self, model, vocabs, recipe: Recipe, device: torch.device):
        self.model, self.vocabs, self.recipe, self.device = model, vocabs, recipe, device

    def encode(self, sources: list[str]) -> list[list[int]]:
        from textgen.seq2seq import encode_sources

        return encode_sources(self.vocabs, _texts(sources, "sources"), self.recipe.data.max_source_tokens)

    def translate(
        self,
        sources: list[str],
        beam: int | None = None,
        nbest: int = 1,
        lenpen: float | None = None,
        sample: bool = False,
        temperature: float = 1.0,
        seed: int | None = None,
        mbr: int | None = None,
        mbr_sampling: str = "epsilon",
        mbr_utility: str = "bleu",
        mbr_epsilon: float = 0.02,
        mbr_top_p: float = 0.9,
        mbr_beam: int = 0,
        **decode,
    ):
        """Best output per source (nbest = 1: a list of strings), or its n best as (text, score) pairs.

        Settings left as None keep the checkpoint's recipe ([decode]); `decode` takes the other DecodeConfig
        keys (no_repeat_ngram, max_len_a, max_len_b, batch_size, precision). beam 1 is greedy; sample=True
        draws one output per source at `temperature`. mbr=N: MBR decoding (textgen/decode/mbr.py) over N
        candidates per source drawn by `mbr_sampling` (epsilon, ancestral, top_p) at `temperature`, chosen by
        `mbr_utility` (bleu, chrf, rouge1, rouge2, rougeL), with beam search's `mbr_beam` best outputs as further
        candidates; a list of strings, the same for the same seed (seed None: 0)."""
        from textgen.decode.mbr import check_mbr_args, mbr_decode
        from textgen.seq2seq import decode_ids

        check_sampling_args(temperature, 0, 1.0)
        if seed is not None and not 0 <= seed < 2**63:
            raise UserError(f"seed must be an integer in [0, 2**63), got {seed}")
        if sample and nbest != 1:
            raise UserError("sampling draws one output per source: leave nbest at 1 (or search with a beam)")
        unknown = set(decode) - {f.name for f in dataclasses.fields(self.recipe.decode)}
        if unknown:
            raise UserError(f"unknown decode setting(s) {', '.join(sorted(unknown))}: see DecodeConfig")
        cfg = replace_given(self.recipe.decode, nbest=nbest, lenpen=lenpen, **decode)
        check_precision(cfg.precision, self.device)
        check_mbr_args(mbr, mbr_sampling, mbr_utility, mbr_epsilon, mbr_top_p, temperature, mbr_beam)
        if mbr is not None:
            if beam is not None or sample or nbest != 1:
                raise UserError(
                    "--mbr samples its own candidates and returns one output per source: "
                    "leave out beam, sample and nbest"
                )
            seed = 0 if seed is None else seed  # repeatable by default, as `textgen eval --mbr` is
            chosen = mbr_decode(
                self.model,
                self.vocabs.tgt.decode,
                self.encode(sources),
                cfg,
                mbr,
                mbr_sampling,
                mbr_utility,
                seed,
                temperature,
                mbr_epsilon,
                mbr_top_p,
                beam=mbr_beam,
            )
            return [c.text for c in chosen]
        beam = cfg.beam if beam is None else beam
        if beam < 1 or nbest < 1:
            raise UserError(f"beam and nbest must be >= 1, got beam {beam}, nbest {nbest}")
        if nbest > beam and not sample:
            raise UserError(f"nbest {nbest} is larger than beam {beam}: raise the beam")
        results = decode_ids(self.model, self.encode(sources), cfg, beam, sample, temperature, seed)
        decode_text = self.vocabs.tgt.decode
        if nbest == 1:
            return [decode_text(toks[0]) if toks else "" for toks, _ in results]
        return [[(decode_text(t), s) for t, s in zip(toks, scores)] for toks, scores in results]

    @torch.no_grad()
    def score(self, sources: list[str], targets: list[str], batch_size: int | None = None) -> list[Scored]:
        """Forced decoding: log p(target + EOS | source) token by token, over the target's encoding.

        Beam search with lenpen 0 scores a hypothesis by the same sum (when the target is the decoded
        hypothesis and encoding it gives back its tokens, as word vocabularies do; sentencepiece may
        segment a detokenized string differently)."""
        from textgen.data.seqbatch import collate
        from textgen.seq2seq import batches_in_order

        src, tgt = self.encode(sources), _texts(targets, "targets")
        if len(src) != len(tgt):
            raise UserError(f"{len(src)} sources but {len(tgt)} targets: give one target per source")
        tgt_ids = [self.vocabs.tgt.encode(t) for t in tgt]
        self.model.eval()
        out: list = [None] * len(src)
        for ids in batches_in_order(src, batch_size or self.recipe.decode.batch_size):
            b = collate([src[i] for i in ids], [tgt_ids[i] for i in ids], ids).to(self.device)
            logp = self.model(b.src, b.src_lens, b.tgt_in).float().log_softmax(-1)  # (B, T, V)
            picked = logp.gather(2, b.tgt_out.unsqueeze(-1)).squeeze(-1).tolist()  # (B, T)
            for row, i in enumerate(ids):
                n = len(tgt_ids[i]) + 1  # the target and its EOS
                pieces = [self.vocabs.tgt.decode([t]) for t in tgt_ids[i]] + ["</s>"]
                out[i] = Scored(pieces, picked[row][:n])
        return out


class LanguageModel:
    """A language-model checkpoint: sample and score text."""

    kind = "lm"

    def __init__(self, model, vocab, recipe: Recipe, device: torch.device):
        self.model, self.vocab, self.recipe, self.device = model, vocab, recipe, device
        self.separator = " " if recipe.data.level == "word" else ""

    def stream(
        self,
        prime: str = "",
        length: int = 500,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[str]:
        """The continuation of `prime`, one decoded token at a time (what `textgen sample` prints)."""
        from textgen.decode.generate_lm import generate

        check_sampling_args(temperature, top_k, top_p)
        if length < 0:
            raise UserError(f"length must be >= 0, got {length}")
        ids = self.vocab.encode_prompt(prime) if prime else self.vocab.start_ids()
        if not ids:
            raise UserError("the prime has no tokens the model knows: give some text")
        for token in generate(self.model, ids, length, temperature, top_k, top_p, seed):
            piece = self.vocab.decode([token])
            yield piece if piece == "\n" or not self.separator else piece + self.separator

    def sample(
        self,
        prime: str = "",
        length: int = 500,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> str:
        """`prime` followed by `length` sampled tokens (temperature 0: greedy)."""
        body = "".join(self.stream(prime, length, temperature, top_k, top_p, seed))
        return prime + (self.separator if prime else "") + body

    @torch.no_grad()
    def score(self, texts: list[str]) -> list[Scored]:
        """log p(text | the start context an unprimed sample gets: a line break, or <eos> for words)."""
        self.model.eval()
        out = []
        for text in _texts(texts, "texts"):
            ids = self.vocab.encode(text)
            if not ids:
                raise UserError("an empty text has nothing to score: give some text")
            context = self.vocab.start_ids()
            x = torch.tensor([context + ids[:-1]], device=self.device)
            logits, _ = self.model(x, self.model.init_state(1))  # (1, T, V)
            logp = logits[0].float().log_softmax(-1)[len(context) - 1 :]
            picked = logp.gather(1, torch.tensor(ids, device=self.device).unsqueeze(1)).squeeze(1).tolist()
            out.append(Scored([self.vocab.decode([i]) for i in ids], picked))
        return out


def load(path: str | Path, device: str = "auto") -> Translator | LanguageModel:
    """The model in a textgen checkpoint, on `device` (auto: a GPU when torch sees one), ready to use."""
    placed = resolve_device(device)
    payload = checkpoint.load(Path(path))
    if payload["kind"] == "lm":
        from textgen.lm import model_from_payload

        model, vocab, recipe = model_from_payload(payload, Path(path), placed)
        return LanguageModel(model, vocab, recipe, placed)
    from textgen.seq2seq import model_from_payload

    model, vocabs, recipe = model_from_payload(payload, Path(path), placed)
    return Translator(model, vocabs, recipe, placed)
