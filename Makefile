# The README's two commands: `make run` and `make test`. Everything else is a helper.
# Both first bring the system libraries WeasyPrint loads (scripts/system-packages: apt as
# root, otherwise it prints the one command to run and stops).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench install system-packages clean

system-packages:
	@sh scripts/system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change.
$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: system-packages $(STAMP)

run: install
	$(BIN)/mou db upgrade
	$(BIN)/mou serve

# The import contract (pyproject.toml) is part of the suite: a layer that reaches up fails it.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
