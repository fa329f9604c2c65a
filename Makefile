# The two entry points a newcomer needs: `make demo` and `make test`.
# Everything is installed into .venv from PyPI on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test tools lint typecheck unit clean

demo: $(VENV)/.installed
	$(BIN)/zaia-relay demo

test: tools lint typecheck unit

# promtool, prometheus and chromium from Debian when missing (needs root; otherwise
# the tests that use them skip, or fail under CI=true).
tools:
	bash scripts/ensure-tools.sh

lint: $(VENV)/.installed
	$(BIN)/ruff format --check relay tests bench
	$(BIN)/ruff check relay tests bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy --strict relay

unit: $(VENV)/.installed
	$(BIN)/pytest

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
