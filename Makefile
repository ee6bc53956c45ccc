# Two commands matter: `make demo` and `make test`. Both set everything up on a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
DEMO_DIR ?= demo-data

.PHONY: install browser test lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check indexer topics cli web evaluation tests bench demo
	$(BIN)/lint-imports

# The report's end-to-end tests read it in headless Chromium (Debian's package; installing needs root).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)

# Docker and GPU cases are selected only where a Docker engine or a CUDA device answers (tests/markers.py).
test: lint browser
	$(OFFLINE) $(BIN)/pytest -q -m "$$($(PY) tests/markers.py)"

demo: install
	$(OFFLINE) $(BIN)/python demo/run.py --dir $(DEMO_DIR)

bench: install
	$(OFFLINE) $(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
