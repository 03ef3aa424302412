# `make demo` and `make test` work on a fresh machine: they create .venv and install everything first.
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON ?= python3
# The tested torch (CPU build); pyproject allows any torch >= 2.6 for users.
TORCH ?= torch==2.13.0

# Experts come from the Hugging Face Hub. Where the shared offline cache sits next to the project
# (this workplace, CI), read it offline; elsewhere the Hub is used as usual.
HUB_CACHE := $(abspath ../shared/hub-cache)
ifneq ($(wildcard $(HUB_CACHE)),)
export HF_HUB_CACHE ?= $(HUB_CACHE)
export HF_HUB_OFFLINE ?= 1
endif
export MUJOCO_GL ?= egl

.PHONY: install demo test lint wheel-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install
	$(VENV)/bin/sb3-il train --algo dagger --env Hopper-v4

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check sb3_il scripts tests examples
	$(VENV)/bin/ruff format --check sb3_il scripts tests examples

# What a user gets from `pip install <wheel>`: a fresh venv, run from outside the checkout.
wheel-check: install
	bash scripts/wheel_check.sh $(PY) '$(TORCH)'
