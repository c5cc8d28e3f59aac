# `make demo` and `make test` each set up .venv on their own (torch first, so the local CPU build is used).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-objectives bench-serve-memory bench-peer bench-data bench-gpu clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'torch>=2.4,<2.14'
	$(BIN)/pip install -q -e '.[test,plot,serve]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/textgen data get tinyshakespeare
	$(BIN)/textgen train --recipe shakespeare-tiny --output checkpoints/shakespeare-tiny.pt
	$(BIN)/textgen sample checkpoints/shakespeare-tiny.pt --prime "ROMEO:" --length 400 --temperature 0.8 --seed 1

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

MT_CKPT = $(if $(wildcard checkpoints/translate-multi30k.pt),--checkpoint checkpoints/translate-multi30k.pt)

TF_CKPT = $(if $(wildcard checkpoints/translate-multi30k-transformer.pt),--checkpoint checkpoints/translate-multi30k-transformer.pt)

ENSEMBLE = $(wildcard $(foreach n,1 2 3 4,checkpoints/ensembles/strong-seed$(n).pt))

RERANK_WEIGHTS = $(wildcard results/ensembles/strong-ensemble-1-2-3-4-rerank.json)

PEER_CKPTS = $(foreach f,$(wildcard checkpoints/translate-multi30k.pt checkpoints/translate-multi30k-joint.pt),--checkpoint $(f))

# Reusable, each printing textgen against a baseline measured side by side (a bare PyTorch loop of the same
# shapes, beam search, one request at a time, decoding without the key/value cache). Results: results/speed/.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_lm.py
	$(BIN)/python benchmarks/bench_seq2seq.py $(MT_CKPT)
	$(BIN)/python benchmarks/bench_transformer.py $(TF_CKPT)
	$(BIN)/python benchmarks/bench_output_width.py
	@if [ -n "$(MT_CKPT)" ]; then $(BIN)/python benchmarks/bench_serve.py $(MT_CKPT) && \
		$(BIN)/python benchmarks/bench_mbr.py $(MT_CKPT); \
	else echo "no checkpoints/translate-multi30k.pt: serving and MBR benchmarks skipped"; fi
	@if [ -n "$(ENSEMBLE)" ]; then $(BIN)/python benchmarks/bench_ensemble.py $(ENSEMBLE) \
		$(if $(RERANK_WEIGHTS),--rerank $(RERANK_WEIGHTS)); \
	else echo "no checkpoints/ensembles/strong-seed*.pt (experiments/ensembles): ensemble benchmark skipped"; fi

# Each sequence-level objective's update against XENT's on the same batches, MIXER at every stage of its schedule.
bench-objectives: $(STAMP)
	$(BIN)/python benchmarks/bench_seq2seq.py --part objectives $(MT_CKPT)

# Server memory under 2,000 varied requests (without a checkpoint it trains a small model first).
bench-serve-memory: $(STAMP)
	$(BIN)/python benchmarks/bench_serve_memory.py $(MT_CKPT)

# Against OpenNMT-py's published figures for the same model shape (about 10 minutes): results/speed-peer/.
bench-peer: $(STAMP)
	$(BIN)/python benchmarks/bench_peer.py $(PEER_CKPTS)

# Cost per corpus size: corpora up to 10M pairs under ~/.cache/textgen-bench (~10 GB, over an hour), and the
# prepare step's encoder: results/data-scale/.
bench-data: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_encode.py

# make bench's LM and seq2seq benchmarks on a CUDA device (benchmarks/gpu-check.sh runs them on a device machine).
bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/bench_lm.py --device cuda --out results/speed/bench-lm-cuda.json
	$(BIN)/python benchmarks/bench_seq2seq.py $(MT_CKPT) --device cuda --out results/speed/bench-seq2seq-cuda.json
	$(BIN)/python benchmarks/bench_seq2seq.py --part objectives $(MT_CKPT) --device cuda \
		--out results/speed/bench-objectives-cuda.json

clean:
	rm -rf $(VENV) runs checkpoints .pytest_cache
