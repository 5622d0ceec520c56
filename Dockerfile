# cpa-planner's server image (docs/deploy.md): `cpa-planner serve` on port 8000.
#
#   make image                          on a Debian base made from Debian's own packages
#                                       (deploy/base-image.sh), no registry needed
#   docker build -t cpa-planner .       on the default public base below
#
# BASE_IMAGE may be any Debian 12 image: one with Python 3.11 in it (python:3.11-slim) is
# used as it is; one without (a plain Debian) gets Debian's own python3.
#
# Two stages: the builder installs the project and its pinned dependencies
# (.ci/constraints.txt) into a virtualenv; the runtime stage has Python and that virtualenv
# only, and runs as an unprivileged user.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS python
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Every stage carries it: `make image` prunes superseded builds by it, and nothing else.
LABEL org.opencontainers.image.vendor="cpa-planner"
# Debian's python3 where the base has none; Debian's own versions (this is a build, not a
# pinned environment: the base image's date decides them).
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi

FROM python AS builder
# binutils: `strip`, below. python3-venv: Debian's python3 has no ensurepip without it.
# hadolint ignore=DL3008
RUN apt-get update \
    && if python3 -c 'import ensurepip' 2>/dev/null; then \
      apt-get install -y --no-install-recommends binutils; \
    else \
      apt-get install -y --no-install-recommends binutils python3-venv; \
    fi \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Dependencies first, from pyproject.toml's list at the versions CI tested: this layer is
# rebuilt only when they change, not on every change of the code.
# `pipca`: a CA bundle for pip where the way to PyPI goes through a TLS-inspecting proxy
# (make image passes the machine's); it is mounted for this step only, never stored.
COPY pyproject.toml .ci/constraints.txt ./
RUN --mount=type=secret,id=pipca \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi \
    && python3 -m venv /opt/venv \
    && python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > requirements.txt \
    && /opt/venv/bin/pip install -c constraints.txt -r requirements.txt
COPY README.md server.py ./
COPY lam lam
COPY graph graph
COPY nodes nodes
COPY prompts prompts
COPY cli cli
COPY api api
RUN --mount=type=secret,id=pipca \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi \
    && /opt/venv/bin/pip install --no-deps -c constraints.txt . \
    # What a server never reads: pip and setuptools (nothing is installed later), the
    # packages' own tests, and the symbol tables of extension modules (42 MB; not those
    # in `*.libs/`, which auditwheel patched and strip would break).
    && /opt/venv/bin/pip uninstall -y setuptools pip \
    && find /opt/venv -depth -type d \( -name tests -o -name test \) -path '*/site-packages/*/*' -exec rm -rf {} + \
    && find /opt/venv -type f -name '*.so' -not -path '*.libs/*' -exec strip --strip-unneeded {} +

FROM python AS runtime
RUN groupadd --system --gid 10001 cpa \
    && useradd --system --uid 10001 --gid cpa --create-home --home-dir /home/cpa cpa
COPY --from=builder /opt/venv /opt/venv
# The settings the server reads (docs/deploy.md has them all): it listens on every address
# of the container, so API keys are required (CPA_API_KEYS or CPA_API_KEYS_FILE): without
# them it refuses to start. REDIS_URL names the Redis every replica shares.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CPA_HOST=0.0.0.0 \
    CPA_PORT=8000 \
    CPA_WORKERS=1 \
    REDIS_URL=redis://redis:6379/0 \
    LANGSMITH_TRACING=false
# By number: a cluster that insists on a non-root user can tell without the passwd file.
USER 10001:10001
WORKDIR /home/cpa
EXPOSE 8000
# Liveness: the process answers (`/healthz` needs no key). Python, as the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CPA_PORT', '8000'), timeout=4)"]
# SIGTERM (podman/docker stop): uvicorn stops taking requests, then each replica hands its
# conversations under way back to the job stream for the others (docs/replicas.md).
STOPSIGNAL SIGTERM
CMD ["cpa-planner", "serve"]
