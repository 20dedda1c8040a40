# syntax=docker/dockerfile:1
#
# One image for every Zhucun process: `zhucun serve <service>` runs a service
# (dispatch, attendance, assessment, projections); `zhucun replay|verify|status|export`
# run the operators' and auditors' commands (Kubernetes Jobs use the same image).
#
#   docker build -t zhucun:dev .
#   docker run --rm -p 8000:8000 -e ZHUCUN_... zhucun:dev serve dispatch
#
# The base images are pinned to exact versions; resolve and append their digests
# (`@sha256:...`) in the release pipeline. Both stages use the same Python image, so the
# virtual environment built in the first one runs unchanged in the second.
# Keep uv's version equal to UV_VERSION in scripts/bootstrap.sh and Python's to
# .python-version (tests/deploy/test_images.py checks both).

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# --- build: resolve the locked environment into /opt/zhucun/venv ---------------------------
FROM python:3.11.14-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/zhucun/venv
WORKDIR /src

# Third-party dependencies first: this layer is rebuilt only when the lock or a member's
# pyproject.toml changes, not on every source edit.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY contracts/dispatch/pyproject.toml contracts/dispatch/
COPY contracts/attendance/pyproject.toml contracts/attendance/
COPY contracts/assessment/pyproject.toml contracts/assessment/
COPY contracts/decisions/pyproject.toml contracts/decisions/
COPY services/dispatch/pyproject.toml services/dispatch/
COPY services/attendance/pyproject.toml services/attendance/
COPY services/assessment/pyproject.toml services/assessment/
COPY services/projections/pyproject.toml services/projections/
# devtools is a workspace member too: uv needs its pyproject.toml to read the workspace
# (--frozen), never its sources; --no-dev leaves it out of the environment.
COPY devtools/pyproject.toml devtools/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --no-editable

# Then the workspace itself, installed as wheels (no editable links back into /src).
COPY README.md ./
COPY shared/src shared/src
COPY contracts/dispatch/src contracts/dispatch/src
COPY contracts/attendance/src contracts/attendance/src
COPY contracts/assessment/src contracts/assessment/src
COPY contracts/decisions/src contracts/decisions/src
COPY services/dispatch/src services/dispatch/src
COPY services/attendance/src services/attendance/src
COPY services/assessment/src services/assessment/src
COPY services/projections/src services/projections/src
COPY src src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
    && /opt/zhucun/venv/bin/python -c "import zhucun.cli.main, zhucun.dispatch.app, zhucun.attendance.app, zhucun.assessment.app, zhucun.projections.app"

# --- runtime: the interpreter, the environment and the policy packs; nothing to build with --
FROM python:3.11.14-slim-bookworm AS runtime
# pip and setuptools are not needed at run time (the environment is complete): drop them.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --system --gid 10001 zhucun \
    && useradd --system --uid 10001 --gid zhucun --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin zhucun
COPY --from=build --chown=root:root /opt/zhucun/venv /opt/zhucun/venv
COPY --chown=root:root policies /opt/zhucun/policies
ENV PATH=/opt/zhucun/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    ZHUCUN_POLICIES_DIR=/opt/zhucun/policies \
    ZHUCUN_HTTP_HOST=0.0.0.0 \
    ZHUCUN_HTTP_PORT=8000 \
    ZHUCUN_LOG__FORMAT=json
# Nothing is written outside /tmp: the image runs with a read-only root filesystem.
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["zhucun"]
CMD ["--help"]
