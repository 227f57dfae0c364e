# syntax=docker/dockerfile:1
# One image recipe for every service: `docker build --build-arg SERVICE=room --build-arg PORT=8003 .`
# (docker-compose.yml passes both). Two stages: `build` resolves the service's locked runtime
# dependencies with uv into /app/.venv (no dev tools: no pytest, ruff, mypy, stack runner);
# the final stage copies that venv and the event contracts onto a clean Python, runs as a
# non-root user and probes /health/ready with Python's urllib (the slim image has no curl).
ARG PYTHON_IMAGE=python:3.12.14-slim-trixie
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "--build-arg SERVICE=<gateway|auth|member|room|inventory|notification> is required" >&2; exit 1; }
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Layer 1, dependencies only (cached until uv.lock or a manifest changes): the workspace
# manifests are bind-mounted, not copied, so no member's source is needed yet.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=libs/common/pyproject.toml,target=libs/common/pyproject.toml \
    --mount=type=bind,source=services/${SERVICE}/pyproject.toml,target=services/${SERVICE}/pyproject.toml \
    uv sync --frozen --no-dev --no-install-workspace --package "${SERVICE}-service"
# Layer 2, our code: the shared library and this one service, installed into the venv (not
# editable, so the runtime stage needs no source tree).
COPY pyproject.toml uv.lock ./
COPY libs/common libs/common
COPY services/${SERVICE} services/${SERVICE}
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "${SERVICE}-service"

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG PORT
RUN test -n "${PORT}" || { echo "--build-arg PORT=<the service's port> is required" >&2; exit 1; }
# A fixed uid/gid, so that compose can hand the container its key files (secrets) owned by it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /var/lib/app --create-home --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0700 /run/keys /run/user-token-keys
COPY --from=build /app/.venv /app/.venv
COPY contracts/events /app/contracts/events
COPY deploy/docker/healthcheck.py /app/healthcheck.py
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVICE=${SERVICE} \
    SERVICE_PORT=${PORT} \
    EVENT_CONTRACTS_DIR=/app/contracts/events \
    RUN_DIR=/var/lib/app
USER app
WORKDIR /var/lib/app
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --start-interval=2s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
# The service's own CLI: serve (default), migrate, seed (`python -m <service>_service --help`).
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"${SERVICE}_service\" \"$@\"", "--"]
CMD ["serve"]
