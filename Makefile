# make setup: the virtual environment in .venv (idempotent). make repro: the whole pipeline.
# make test: the test suite (what CI runs). make browser: Debian's Chromium, for the browser test.
# make postgres: Debian's PostgreSQL server, for the tests of a study shared through it (docs/scaling.md).
# make queue JOBS=N: run the queued experiments N at a time, each with its share of the cores.
# make compare: the experiments side by side in 80 columns (petseg compare: Dice with intervals, epochs, training minutes, changed params).
# make full-cpu DATA=/path/to/oxford-pets: the whole dataset on a 2-core CPU in about an hour with bf16, sized for a Zen 4 EPYC, the slowest bf16 CPU measured (profiles/full-cpu.yaml; docs/full-data.md, The hour on a Zen 4 EPYC).
# make full-cpu-equal DATA=/path/to/oxford-pets EPOCHS=18 [SEED=7]: the profile's recipe with both models at EPOCHS epochs and the same first crop size (the equal-epochs pair; SEED: another split and initialisation).
# make full: the full-scale profile (profiles/full.yaml: official archives, 256 px, the reference's widths) as a DVC experiment.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup repro test browser postgres full full-cpu full-cpu-equal data-given queue compare

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

# The tests start their own throwaway server (initdb in a temporary folder, a Unix socket only); the
# package's own cluster is not used. Its binaries live in /usr/lib/postgresql/VERSION/bin, off PATH.
postgres:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; }

full: setup
	args=$$(petseg profile profiles/full.yaml) && dvc exp run -n full-scale $$args

# DATA is checked before setup, so a forgotten DATA costs no install.
data-given:
	@test -n "$(DATA)" || { echo "make $(MAKECMDGOALS) DATA=/path/to/oxford-pets: your copy of the dataset in the official layout" >&2; exit 2; }

full-cpu: data-given setup
	args=$$(petseg profile profiles/full-cpu.yaml) && dvc exp run -n full-cpu $$args -S data.folder=$(abspath $(DATA))

# Both models for EPOCHS epochs with one recipe (the profile's, the ResNet34-UNet's own first crop size
# dropped): which model is better per epoch, where full-cpu's epochs are sized for equal minutes. SEED (params.yaml's
# seed when empty) draws another validation split, initialisation and augmentation: a pair per seed.
EPOCHS ?= 18
SEED ?=
full-cpu-equal: data-given setup
	args=$$(petseg profile profiles/full-cpu.yaml) && dvc exp run -n full-cpu-equal$(if $(SEED),-seed$(SEED)) $$args -S data.folder=$(abspath $(DATA)) -S unet.epochs=$(EPOCHS) -S resnet34_unet.epochs=$(EPOCHS) -S resnet34_unet.progressive_size=null $(if $(SEED),-S seed=$(SEED))

JOBS ?= 1
queue: setup
	OMP_NUM_THREADS=$$(( $$(nproc) / $(JOBS) > 0 ? $$(nproc) / $(JOBS) : 1 )) dvc queue start -j $(JOBS)

compare: setup
	petseg compare
