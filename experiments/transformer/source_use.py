"""How much does a seq2seq model read its source? Each checkpoint scores the validation targets given their own
sources and given the sources of other examples (a fixed random permutation): the gap in mean nats per target
token is what the source tells the model. A model that has learned only the targets' prior has a gap near 0.

python experiments/transformer/source_use.py OUT.json CKPT...
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import textgen
from textgen.data.parallel import load_parallel
from textgen.results import invocation, make_result, write_result


def nats_per_token(model, sources: list[str], targets: list[str]) -> float:
    scored = model.score(sources, targets)
    return -sum(s.total for s in scored) / sum(len(s.logprobs) for s in scored)


def main() -> None:
    out, ckpts = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    start, metrics, shas = time.perf_counter(), {}, {}
    for ckpt in ckpts:
        model = textgen.load(ckpt)
        corpus = load_parallel(model.recipe.data.corpus, only="valid")
        split, shas = corpus.splits["valid"], shas | corpus.sha256
        shuffled = list(split.sources)
        random.Random(1).shuffle(shuffled)
        own, other = nats_per_token(model, split.sources, split.targets), nats_per_token(model, shuffled, split.targets)
        metrics[ckpt.stem] = {
            "own_sources": round(own, 4),
            "other_sources": round(other, 4),
            "gap": round(other - own, 4),
        }
        print(ckpt.stem, metrics[ckpt.stem])
    extra = {"checkpoints": [str(c) for c in ckpts], "split": "valid", "permutation_seed": 1}
    command = invocation("python experiments/transformer/source_use.py")
    write_result(out, make_result(metrics, shas, time.perf_counter() - start, command=command, **extra))


if __name__ == "__main__":
    main()
