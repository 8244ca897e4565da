# depthcloud — every target creates and uses the local virtual environment .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_OUT ?= demo-out

.PHONY: demo test lint bench clean venv

# The stamp records which extras are installed; re-run when the project's dependencies change.
$(VENV)/.core: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q -e '.[all,dev]'
	@touch $@

$(VENV)/.bench: $(VENV)/.dev
	$(PIP) install -q -e '.[all,dev,bench]'
	@touch $@

venv: $(VENV)/.dev

demo: $(VENV)/.core
	$(VENV)/bin/depthcloud demo -o $(DEMO_OUT) --overwrite

test: $(VENV)/.dev
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(VENV)/.bench
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
