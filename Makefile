# Two commands matter: `make demo` and `make test`. Both set everything up on a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
DEMO_DIR ?= demo-data

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check indexer topics cli evaluation tests bench demo
	$(BIN)/lint-imports

test: lint
	$(OFFLINE) $(BIN)/pytest -q

demo: install
	$(OFFLINE) $(BIN)/python demo/run.py --dir $(DEMO_DIR)

bench: install
	$(OFFLINE) $(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
