# The two commands of the README. Each bootstraps .venv on a fresh machine, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= data/tfds
DEMO_WORKDIR ?= runs/demo
REPRODUCE_DIR ?= runs/reproduce

# Both test tiers (docs/testing.md); test-fast is the one to run while working.
PYTEST := $(PY) -m pytest -n 2 --dist loadgroup -q
TESTS := tests relight_jax/cpu_kernels/tests

.PHONY: test test-fast test-app demo reproduce venv lint clean-venv

$(STAMP): pyproject.toml setup.py constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(PYTEST) -m "not app" --durations=15 $(TESTS)

test-fast: $(STAMP)
	$(PYTEST) -m "not integration and not app" $(TESTS)

# The web app's tests (docs/testing.md): Gradio (the `app` extra, with constraints-app.txt:
# Gradio requires an older pillow) and Debian's Chromium, installed here when missing and
# apt is at hand. Not part of `make test`: Gradio alone takes about a minute to install.
test-app: $(STAMP)
	$(PY) -m pip install --quiet -c constraints-app.txt -e '.[app]'
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium; }
	$(PYTEST) -m app tests/test_app.py

lint: $(STAMP)
	$(VENV)/bin/ruff check relight_jax configs tests bench

demo: $(STAMP)
	$(PY) -m relight_jax.demo --data_dir=$(DATA_DIR) --workdir=$(DEMO_WORKDIR)

# The report's Table 1 on held-out test locations, the three models trained as the
# original trained them, at CPU size (about 45 minutes on 2 cores; docs/reproduction.md).
reproduce: $(STAMP)
	$(PY) -m relight_jax.reproduce --scale=cpu --data_dir=$(DATA_DIR) --output=$(REPRODUCE_DIR)

clean-venv:
	rm -rf $(VENV)
