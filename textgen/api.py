"""The public Python surface: `textgen.load(path)` gives a Translator or a LanguageModel.

Lists in, lists out, batched inside, repeatable with a seed; bad input raises the same `UserError`
the CLI prints. The CLI's decode, sample and score commands call these methods, so there is one path.

    >>> import textgen
    >>> mt = textgen.load("checkpoints/translate-multi30k.pt")
    >>> mt.translate(["Ein Hund läuft."], beam=5)
    ['A dog is running.']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from textgen.config import Recipe
from textgen.decode import settings
from textgen.device import resolve_device
from textgen.errors import UserError
from textgen.train import checkpoint


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

    def __str__(self) -> str:
        """total<TAB>tokens<TAB>mean, as `textgen score` prints it."""
        return f"{self.total:.4f}\t{len(self.logprobs)}\t{self.mean:.4f}"

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "tokens": len(self.tokens),
            "mean": self.mean,
            "per_token": [{"token": t, "logprob": p} for t, p in zip(self.tokens, self.logprobs)],
        }


def _text(value, what: str) -> str:
    """`value` if it is a string the tokenizers can take: a lone surrogate (from a bad decode, JSON "\\ud800")
    cannot be encoded as UTF-8, which sentencepiece needs."""
    if not isinstance(value, str):
        raise UserError(f"{what} is {type(value).__name__}, not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UserError(f"{what} is not valid Unicode (a lone surrogate at character {exc.start}): fix the text")
    return value


def _texts(value, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise UserError(f"{what} must be a list of strings, got {type(value).__name__}")
    return [_text(v, f"{what}[{i}]") for i, v in enumerate(value)]


class WrongKind(UserError, AttributeError):
    """A method of the other kind of model; an AttributeError too, so hasattr() still says no."""


class _Model:
    """What both kinds share: where the model came from, how it prints, and a clear error for the other kind's
    methods."""

    kind: str
    others: tuple[str, ...]  # the other kind's public methods
    has: str  # what to use instead

    def __init__(self, recipe: Recipe, device: torch.device, path: str | Path | None):
        self.recipe, self.device, self.path = recipe, device, path

    def __getattr__(self, name: str):
        if name in self.others:
            what = "a language model" if self.kind == "lm" else f"a {self.kind} model"
            raise WrongKind(f"'{self.path or 'this checkpoint'}' is {what}: it has {self.has}, not {name}()")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _describe(self, *details: str) -> str:
        where = f"{str(self.path)!r}, " if self.path is not None else ""
        return f"{type(self).__name__}({where}task={self.kind}, {', '.join(details)}, device={self.device})"


class Translator(_Model):
    """A seq2seq checkpoint (translation or summarization): translate and score."""

    kind = "seq2seq"
    others = ("sample", "stream")
    has = "translate() (sample=True draws) and score()"

    def __init__(self, model, vocabs, recipe: Recipe, device: torch.device, path: str | Path | None = None):
        super().__init__(recipe, device, path)
        self.model, self.vocabs = model, vocabs
        self._rerankers: dict = {}  # weights file (resolved) -> its loaded rerank.Reranker

    def __repr__(self) -> str:
        return self._describe(f"vocab={len(self.vocabs.src)}/{len(self.vocabs.tgt)}")

    def encode(self, sources: list[str]) -> list[list[int]]:
        from textgen.tasks.seq2seq import encode_sources

        return encode_sources(self.vocabs, _texts(sources, "sources"), self.recipe.data.max_source_tokens)

    def translate(
        self,
        sources: list[str],
        beam: int | None = None,
        nbest: int = 1,
        lenpen: float | None = None,
        sample: bool = False,
        temperature: float | None = None,
        seed: int | None = None,
        mbr: int | None = None,
        mbr_sampling: str | None = None,
        mbr_utility: str | None = None,
        mbr_epsilon: float | None = None,
        mbr_top_p: float | None = None,
        mbr_beam: int | None = None,
        rerank=None,
        progress: bool = False,
        **decode,
    ):
        """Best output per source (nbest = 1: a list of strings), or its n best as (text, score) pairs.

        Settings left as None keep the checkpoint's recipe ([decode], [decode.mbr]); `decode` takes the other
        DecodeConfig keys (no_repeat_ngram, max_len_a, max_len_b, batch_size, precision). beam 1 is greedy;
        sample=True draws one output per source at `temperature`. mbr=N: MBR decoding (textgen/decode/mbr.py)
        over N candidates per source drawn by `mbr_sampling` (epsilon, ancestral, top_p) at `temperature`,
        chosen by `mbr_utility` (bleu, chrf, rouge1, rouge2, rougeL), with beam search's `mbr_beam` best outputs
        as further candidates; a list of strings, the same for the same seed (seed None: the recipe's,
        decode.mbr.seed). A recipe that sets decode.mbr.samples decodes by MBR unless beam or sample is given.
        A sampled output depends on its source and the seed alone, not on the other sources or the batch size.
        rerank: a file from `textgen rerank` (or its loaded rerank.Reranker): beam search's n best (the beam at
        least as wide) reranked by its weights and models, one output per source.
        progress=True: a progress bar on stderr while decoding, when stderr is a terminal."""
        from textgen.console import progress_bar
        from textgen.decode.dispatch import decode_sources, work_items

        reranker = self._reranker(rerank) if rerank is not None else None
        if reranker is not None:
            chosen = reranker.decode_settings(beam, lenpen, nbest, sample, mbr)
            nbest, beam, lenpen = chosen["nbest"], chosen["beam"], chosen["lenpen"]

        cfg = settings.resolve(
            self.recipe.decode,
            self.device,
            sample,
            seed,
            mbr,
            self.model,
            beam=beam,
            nbest=nbest,
            lenpen=lenpen,
            temperature=temperature,
            mbr_sampling=mbr_sampling,
            mbr_utility=mbr_utility,
            mbr_epsilon=mbr_epsilon,
            mbr_top_p=mbr_top_p,
            mbr_beam=mbr_beam,
            **decode,
        )
        encoded = self.encode(sources)
        with progress_bar("decode", work_items(cfg, len(encoded)) if progress else 0) as advance:
            decoded = decode_sources(self.model, self.vocabs.tgt.decode, encoded, cfg, sample, seed, advance)
        if reranker is not None:
            return reranker.choose(sources, [d.nbest for d in decoded])
        if nbest == 1:
            return [d.text for d in decoded]
        return [d.nbest for d in decoded]

    def _reranker(self, rerank):
        """A loaded rerank.Reranker as it is, or the one a weights file names (loaded once per file)."""
        from textgen import rerank as reranking

        if isinstance(rerank, reranking.Reranker):
            return rerank
        key = str(Path(rerank).resolve())
        if key not in self._rerankers:
            self._rerankers[key] = reranking.load(rerank, str(self.device))
        return self._rerankers[key]

    @torch.no_grad()
    def score(self, sources: list[str], targets: list[str], batch_size: int | None = None) -> list[Scored]:
        """Forced decoding: log p(target + EOS | source) token by token, over the target's encoding.

        Beam search with lenpen 0 scores a hypothesis by the same sum (when the target is the decoded
        hypothesis and encoding it gives back its tokens, as word vocabularies do; sentencepiece may
        segment a detokenized string differently)."""
        from textgen.data.seqbatch import collate
        from textgen.decode.driver import batches_in_order

        settings.check(batch_size=batch_size)
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


class LanguageModel(_Model):
    """A language-model checkpoint: sample and score text."""

    kind = "lm"
    others = ("translate", "encode")
    has = "sample(), stream() and score()"

    def __init__(self, model, vocab, recipe: Recipe, device: torch.device, path: str | Path | None = None):
        super().__init__(recipe, device, path)
        self.model, self.vocab = model, vocab
        self.separator = " " if recipe.data.level == "word" else ""

    def __repr__(self) -> str:
        return self._describe(f"level={self.recipe.data.level}", f"vocab={len(self.vocab)}")

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

        settings.check(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        prime = _text(prime, "the prime")
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
    def score(self, texts: list[str], batch_size: int = 64, max_tokens: int = 8192) -> list[Scored]:
        """log p(text | the start context an unprimed sample gets: a line break, or <eos> for words). Texts of
        similar length are scored together, up to `batch_size` texts and `max_tokens` padded tokens a batch
        (padding goes after a text's end, which a causal model never reads)."""
        settings.check(batch_size=batch_size)
        self.model.eval()
        encoded = []
        for text in _texts(texts, "texts"):
            encoded.append(self.vocab.encode(text))
            if not encoded[-1]:
                raise UserError("an empty text has nothing to score: give some text")
        context, out = self.vocab.start_ids(), [None] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        while order:
            rows = order[:1]  # the longest texts last: each batch's width is its last text's
            while len(rows) < min(batch_size, len(order)):
                if (len(rows) + 1) * (len(context) + len(encoded[order[len(rows)]])) > max_tokens:
                    break
                rows.append(order[len(rows)])
            del order[: len(rows)]
            x = torch.zeros(len(rows), len(context) + len(encoded[rows[-1]]) - 1, dtype=torch.long)
            y = torch.zeros(len(rows), len(encoded[rows[-1]]), dtype=torch.long)
            for r, i in enumerate(rows):
                seq = context + encoded[i][:-1]
                x[r, : len(seq)], y[r, : len(encoded[i])] = torch.tensor(seq), torch.tensor(encoded[i])
            logits, _ = self.model(x.to(self.device), self.model.init_state(len(rows)))  # (B, T, V)
            logits = logits[:, len(context) - 1 :].float()
            y = y.to(self.device)
            picked = (logits.gather(-1, y.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)).cpu()  # (B, T)
            for r, i in enumerate(rows):
                ids = encoded[i]
                out[i] = Scored([self.vocab.decode([t]) for t in ids], picked[r, : len(ids)].tolist())
        return out


def load(
    path: str | Path | list[str | Path], device: str = "auto", kind: str | None = None
) -> Translator | LanguageModel:
    """The model in a textgen checkpoint, on `device` (auto: a GPU when torch sees one), ready to use; `kind`
    ("lm" or "seq2seq"): the kind the caller needs, another is refused before the model is built. A list of
    seq2seq checkpoints with the same vocabularies is one Translator that decodes and scores with their ensemble
    (the mean of their probabilities at each step; decode/ensemble.py), under the first one's recipe."""
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if not paths:
        raise UserError("give at least one checkpoint")
    placed = resolve_device(device)
    if len(paths) > 1:
        if kind == "lm":
            raise UserError("an ensemble is of seq2seq checkpoints: sampling takes one language model")
        from textgen.tasks.seq2seq import load_models

        model, vocabs, recipe, _ = load_models(paths, placed)
        return Translator(model, vocabs, recipe, placed, " + ".join(map(str, paths)))
    path = paths[0]
    payload = checkpoint.load(path)
    if kind is not None and payload["kind"] != kind:
        raise UserError(f"checkpoint '{path}' holds a {payload['kind']} model, this command needs a {kind} model")
    if payload["kind"] == "lm":
        from textgen.tasks.lm import model_from_payload

        model, vocab, recipe = model_from_payload(payload, path, placed)
        return LanguageModel(model, vocab, recipe, placed, path)
    from textgen.tasks.seq2seq import model_from_payload

    model, vocabs, recipe = model_from_payload(payload, path, placed)
    return Translator(model, vocabs, recipe, placed, path)


def score_files(model: Translator | LanguageModel, src=None, tgt=None, text=None) -> list[Scored]:
    """`textgen score`: a seq2seq model scores the line-aligned files `src` (sources) and `tgt` (outputs), a
    language model the lines of `text`; one Scored per line."""
    from textgen.data.parallel import read_lines

    if isinstance(model, Translator):
        if src is None or tgt is None or text is not None:
            raise UserError("a seq2seq checkpoint scores --src FILE --tgt FILE (line-aligned), not --text")
        return model.score(read_lines(src), read_lines(tgt))
    if text is None or src is not None or tgt is not None:
        raise UserError("a language-model checkpoint scores --text FILE, not --src/--tgt")
    return model.score(read_lines(text))
