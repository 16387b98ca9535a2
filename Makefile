# make setup: the virtual environment in .venv (idempotent). make repro: the whole pipeline.
# make test: the test suite (what CI runs).
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup repro test

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

repro: setup
	dvc repro

test: setup
	$(PY) -m pytest -ra
