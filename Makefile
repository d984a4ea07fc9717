# Every target bootstraps .venv on first use: a fresh machine needs only python3.11, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
# What `make test`, `make lint`, `make docs` and `make package-check` use: every extra they test.
ALL_EXTRAS := dev,docs,cluster,tensorboard,video,track
STAMP := $(VENV)/.installed
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test test-fast lint format bench docs docs-serve package-check clean

# `make demo`: the core alone (`pip install awmp`), no extras.
$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(ALL_EXTRAS)]'
	touch $(STAMP) $(CORE)

demo: $(CORE)
	$(BIN)/awmp demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m "not slow"

bench: $(STAMP)
	$(BIN)/awmp bench --out bench.json

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# The documentation site into site/; --strict: a broken link or a docstring reference that
# cannot be found fails the build (CI runs this).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

# Build the sdist and the wheel, check them, install the wheel alone into a fresh venv outside
# the checkout and train, evaluate and report from there (CI runs this).
package-check: $(STAMP)
	PYTHON=$(PYTHON) BIN=$(BIN) .ci/package_check.sh

clean:
	rm -rf $(VENV) build dist site *.egg-info src/*.egg-info .pytest_cache
