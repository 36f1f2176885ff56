# Two commands matter: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt-installed
APT_PACKAGES :=
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test lint format clean

setup: $(STAMP) $(APT_STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Debian packages the project needs (none yet for the core; later features add theirs here).
$(APT_STAMP):
	@if [ -n "$(APT_PACKAGES)" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(APT_PACKAGES); \
		else sudo apt-get update -qq && sudo apt-get install -y -qq $(APT_PACKAGES); fi; fi
	mkdir -p $(VENV) && touch $@

demo: setup
	$(PY) recipes/train.py hparams/spec_cnn.yaml
	$(PY) recipes/train.py hparams/lmac.yaml
	@echo "Results: results/lmac_spec_cnn_synth/ (metrics.md, metrics.json, examples/*/wav, examples/*/png)"

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf results data/synth
