# `make demo` and `make test` each set up .venv on their own (torch first, so the local CPU build is used).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

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

PEER_CKPTS = $(foreach f,$(wildcard checkpoints/translate-multi30k.pt checkpoints/translate-multi30k-joint.pt),--checkpoint $(f))

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_lm.py
	$(BIN)/python benchmarks/bench_seq2seq.py $(MT_CKPT)
	@if [ -n "$(MT_CKPT)" ]; then $(BIN)/python benchmarks/bench_serve.py $(MT_CKPT) && \
		$(BIN)/python benchmarks/bench_mbr.py $(MT_CKPT); \
	else echo "no checkpoints/translate-multi30k.pt: serving and MBR benchmarks skipped"; fi
	$(BIN)/python benchmarks/bench_serve_memory.py $(MT_CKPT)  # without one it trains a small model
	$(BIN)/python benchmarks/bench_output_width.py
	$(BIN)/python benchmarks/bench_peer.py $(PEER_CKPTS)
	$(BIN)/python benchmarks/bench_data.py  # corpora up to 10M pairs under ~/.cache/textgen-bench (~10 GB)
	$(BIN)/python benchmarks/bench_encode.py --before a186cc5
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(BIN)/python benchmarks/bench_lm.py --device cuda --out results/bench-lm-cuda.json && \
		$(BIN)/python benchmarks/bench_seq2seq.py $(MT_CKPT) --device cuda --out results/bench-seq2seq-cuda.json; \
	else echo "no CUDA device: GPU benchmarks skipped"; fi

clean:
	rm -rf $(VENV) runs checkpoints .pytest_cache
