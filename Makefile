# `make demo` and `make test` work on a fresh machine: they create .venv and install everything first.
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON ?= python3

# Experts come from the Hugging Face Hub. Where the shared offline cache sits next to the project
# (this workplace, CI), read it offline; elsewhere the Hub is used as usual.
HUB_CACHE := $(abspath ../shared/hub-cache)
ifneq ($(wildcard $(HUB_CACHE)),)
export HF_HUB_CACHE ?= $(HUB_CACHE)
export HF_HUB_OFFLINE ?= 1
endif
export MUJOCO_GL ?= egl

.PHONY: install demo test lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install
	$(PY) scripts/train.py --algo dagger --env Hopper-v4

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check sb3_il scripts tests
	$(VENV)/bin/ruff format --check sb3_il scripts tests
