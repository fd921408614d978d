# Two commands do all the set-up on a fresh machine:
#   make run    virtualenv + install + fetch models + the embedded demo
#   make test   virtualenv + install (with train/dev extras) + the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
# the suite's workers: most of its time is spent waiting on real-time clips, servers and a browser
TEST_WORKERS ?= 2

.PHONY: run test lint install install-dev models clean accuracy bench screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,dev]'
	touch $(VENV)/.installed $@

install: models
install-dev: $(VENV)/.installed-dev models

models: $(VENV)/.installed
	$(BIN)/analyzer models fetch

run: install
	$(BIN)/analyzer run $(ARGS)

test: install-dev
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal $(ARGS)

lint: install-dev
	$(BIN)/ruff check analyzer tests
	$(BIN)/ruff format --check analyzer tests

bench: install-dev
	$(BIN)/analyzer bench --streams 12 --seconds 30 --naive --soak 10 --traffic shop-day --faces ../shared/data/utkface --json runs/bench.json --markdown docs/PERFORMANCE.md

accuracy: install-dev
	$(BIN)/analyzer accuracy --faces ../shared/data/utkface --real-clips ../shared/data/real-clips --out docs/ACCURACY.md

# the web page's pictures in docs/WEB.md, taken by its browser test
screenshots: install-dev
	FOOTFALL_SCREENSHOTS=docs/images $(BIN)/python -m pytest -q tests/test_web_page.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
