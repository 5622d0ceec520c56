# The README's quick start: `make demo` sets up and runs one request; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
REQUEST ?= Remind me to call Anna tomorrow at 9

.PHONY: setup demo test lint

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup: $(PY)
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[dev]'

# Exit 5: the desktop ToDo waits for an answer and no terminal was there to ask (CI).
demo: setup
	$(VENV)/bin/cpa-planner run --yes "$(REQUEST)" || [ $$? -eq 5 ]

test:
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
