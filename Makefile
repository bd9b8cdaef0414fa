# `make demo`: create .venv, install, run the main job on the offline data.
# `make test`: create .venv, install with the test extra, run every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test bench clean-venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --no-compile -e '.[test,bench,ray]'
	touch $(STAMP)

# The demo needs the package and the AutoAttack reference only (not pytest or Ray).
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --no-compile -e '.[autoattack]'
	touch $(DEMO_STAMP)

# The main job: Theorem 1 checked; the quick-scale figures made (trains what
# the run store lacks, redraws the figures that are missing or stale); every
# claim verified against the same run store (writes the report).
demo: $(DEMO_STAMP)
	$(BIN)/python -m theory.check --p 0.7
	$(BIN)/python -m paper_figures all --scale quick --jobs 2 --channels-last
	$(BIN)/python -m verify --scale quick --jobs 2 --channels-last

# pytest exits 5 when it collects no tests; that is not a failure here.
test: $(STAMP)
	$(BIN)/python -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit $$?; done

clean-venv:
	rm -rf $(VENV)
