# Two commands matter: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt-installed
APT_PACKAGES := fluidsynth fluid-soundfont-gm espeak-ng
APT_TEST_PACKAGES := chromium
RUN := results/lmac_spec_cnn_synth
TEST_WORKERS ?= 2  # pytest-xdist processes; each runs whole test files (fixtures stay per file)
export HF_HUB_OFFLINE ?= 1

.PHONY: setup apt-test demo test lint format clean

setup: $(STAMP) $(APT_STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
		-c constraints.txt -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Debian packages: APT_PACKAGES for everything, APT_TEST_PACKAGES (headless browser) for tests.
APT_INSTALL = missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(APT_STAMP): Makefile
	@$(call APT_INSTALL,$(APT_PACKAGES))
	mkdir -p $(VENV) && touch $@

apt-test:
	@$(call APT_INSTALL,$(APT_TEST_PACKAGES))

demo: setup
	$(PY) recipes/train.py hparams/spec_cnn.yaml
	$(PY) recipes/train.py hparams/lmac.yaml
	$(PY) recipes/export.py --run $(RUN) --out pretrained/lmac_spec_cnn_synth
	$(PY) recipes/interpret.py --source pretrained/lmac_spec_cnn_synth --out $(RUN)/report \
		$(RUN)/examples/test/wav/*_input.wav $(RUN)/examples/mixtures/wav/*_input.wav
	@echo "Results: $(RUN)/ (metrics.md, metrics.json, examples/*/wav, examples/*/png, report/report.html)"

test: setup apt-test
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf results data/synth
