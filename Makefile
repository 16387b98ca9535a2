# make setup: the virtual environment in .venv (idempotent). make repro: the whole pipeline.
# make test: the test suite (what CI runs). make browser: Debian's Chromium, for the browser test.
# make queue JOBS=N: run the queued experiments N at a time, each with its share of the cores.
# make full: the full-scale profile (profiles/full.yaml: official archives, 256 px, seed widths) as a DVC experiment.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup repro test browser full queue

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(VENV)/bin/petseg plots-template --out .dvc/plots/offline.html
	touch $@

repro: setup
	dvc repro

test: setup
	$(PY) -m pytest -ra

browser:
	command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }

full: setup
	args=$$(petseg profile profiles/full.yaml) && dvc exp run -n full-scale $$args

JOBS ?= 1
queue: setup
	OMP_NUM_THREADS=$$(( $$(nproc) / $(JOBS) > 0 ? $$(nproc) / $(JOBS) : 1 )) dvc queue start -j $(JOBS)
