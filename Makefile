# The README's quick start: `make demo` sets up and runs one request; `make test` runs the tests.
# Every target sets up first; set-up installs again only when pyproject.toml or the pinned
# versions changed since the last install (the stamp file in the virtualenv).
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
REQUEST ?= Remind me to call Anna tomorrow at 9

.PHONY: setup demo test test-slow test-all lint

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml .ci/constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[dev]'
	touch $@

setup: $(INSTALLED)

# Exit 5: the desktop ToDo waits for an answer and no terminal was there to ask (CI).
demo: setup
	$(VENV)/bin/cpa-planner run --yes "$(REQUEST)" || [ $$? -eq 5 ]

# `test`: everything but the tests that start servers, browsers and crash processes (a few
# minutes); `test-slow`: those (CI runs both); `test-all`: both in one run.
test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
