# syntax=docker/dockerfile:1
#
# zaia-relay container image.
#
#   docker build -t zaia-relay .
#   docker run --read-only --tmpfs /tmp -v zaia-relay:/var/lib/zaia-relay \
#     -e ZAIA_API_KEY=... -p 8080:8080 zaia-relay
#
# Invariants (checked by tests/test_dockerfile.py):
# - runs as UID/GID 10001, never root;
# - needs no writable path but /var/lib/zaia-relay (state, a volume) and /tmp: the root
#   filesystem can be mounted read-only;
# - the default process is `zaia-relay run` with the configuration at
#   /etc/zaia-relay/relay.yaml (mount your own there; the Helm chart does);
# - no compiler, package cache or build tool reaches the final stage.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package and its dependencies into a self-contained venv ------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The venv lives at the path it is used from in the final stage: its scripts hard-code it.
RUN python -m venv /opt/zaia-relay
# README.md is the package's long description: the build reads it.
COPY pyproject.toml README.md ./
COPY relay ./relay
RUN /opt/zaia-relay/bin/pip install --no-cache-dir /src \
    && /opt/zaia-relay/bin/python -m compileall -q /opt/zaia-relay/lib \
    && /opt/zaia-relay/bin/zaia-relay --version

# --- runtime -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="zaia-relay" \
      org.opencontainers.image.description="Watches Zaia executions and alerts Slack, webhooks and Alertmanager" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed UID/GID: Kubernetes' runAsUser and fsGroup, and volume ownership, rely on it.
RUN groupadd --system --gid 10001 zaia-relay \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/zaia-relay --shell /usr/sbin/nologin zaia-relay \
    && mkdir -p /var/lib/zaia-relay /etc/zaia-relay \
    && chown 10001:10001 /var/lib/zaia-relay \
    && chmod 0750 /var/lib/zaia-relay

COPY --from=build /opt/zaia-relay /opt/zaia-relay
COPY config/container.yaml /etc/zaia-relay/relay.yaml
COPY config/relay.example.yaml /etc/zaia-relay/relay.example.yaml

# Bytecode is compiled at build time; writing .pyc at run time would need a writable
# root filesystem. TMPDIR keeps every temporary file in /tmp (an emptyDir or tmpfs).
ENV PATH=/opt/zaia-relay/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    HOME=/var/lib/zaia-relay \
    RELAY_CONFIG=/etc/zaia-relay/relay.yaml \
    ZAIA_RELAY_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz

USER 10001:10001
WORKDIR /var/lib/zaia-relay
VOLUME ["/var/lib/zaia-relay"]
EXPOSE 8080

# The image has no curl: Python's urllib asks /healthz; any error or non-2xx exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['ZAIA_RELAY_HEALTHCHECK_URL'], timeout=4).close()"]

# Exec form: the relay is PID 1 and gets SIGTERM itself, so it drains deliveries on stop.
# `docker run IMAGE check-config` (or any other command) replaces `run`.
ENTRYPOINT ["zaia-relay"]
CMD ["run", "--config", "/etc/zaia-relay/relay.yaml"]
