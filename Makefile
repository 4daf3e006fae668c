# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Off this workplace, torch's CPU wheels live on their own index; set e.g.
# TORCH_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu" to avoid CUDA downloads.
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint fix install clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e '.[train,serve,monitor,dev]' $(TORCH_INDEX)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hybridroute demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow and not train and not gpu and not network'

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

fix: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) runs .pytest_cache
