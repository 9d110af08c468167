# The two commands of the README. Each bootstraps .venv on a fresh machine, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= data/tfds
DEMO_WORKDIR ?= runs/demo

.PHONY: test demo venv lint clean-venv

$(STAMP): setup.py constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check relight_jax configs tests bench

demo: $(STAMP)
	$(PY) -m relight_jax.demo --data_dir=$(DATA_DIR) --workdir=$(DEMO_WORKDIR)

clean-venv:
	rm -rf $(VENV)
