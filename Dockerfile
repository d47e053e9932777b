# syntax=docker/dockerfile:1
# EVA Django image: web (gunicorn), Celery workers, beat, the inbound consumer and the one-off
# migrate job all run this image with a different command (see docker-compose.prod.yml).
#
# The base is pinned to a patch release; bump it deliberately (and rebuild) for security fixes.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

############################ builder: resolve and install dependencies into a venv
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# build-essential only for the rare dependency without a manylinux wheel; it stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# pyproject.toml names README.md as the long description, so both are needed by `pip install .`.
COPY pyproject.toml README.md ./
COPY eva ./eva
COPY apps ./apps
COPY workers ./workers
# Install the project to resolve its dependencies, then drop the project itself from the venv:
# the code runs from /app (PYTHONPATH), so BASE_DIR finds templates/, static/ and locale/ there.
RUN pip install --no-compile . && pip uninstall --yes eva

############################ runtime: venv + source, non-root
FROM ${PYTHON_IMAGE} AS runtime

ARG EVA_UID=1000
ARG EVA_GID=1000

# PYTHONUNBUFFERED: logs reach `docker logs` (and so Promtail/Loki) immediately.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=eva.settings \
    EVA_STATIC_ROOT=/app/staticfiles \
    EVA_MEDIA_ROOT=/data/media \
    EVA_HTTPS=true

# The same uid/gid as the `node` user of the gateway image, so both can write the shared media
# volume without a chown dance.
RUN groupadd --system --gid "${EVA_GID}" eva \
    && useradd --system --uid "${EVA_UID}" --gid eva --home-dir /app --shell /usr/sbin/nologin eva \
    && mkdir -p /app /data/media \
    && chown -R eva:eva /app /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=eva:eva . /app

# Static files are collected at build time, so web replicas never race on a shared folder.
# The throwaway values below only let settings import; nothing connects to them.
RUN SECRET_KEY=collectstatic-only-this-is-not-a-real-secret-0123456789 \
    DATABASE_URL=postgres://build:build@127.0.0.1:5432/build \
    REDIS_URL=redis://127.0.0.1:6379/0 \
    EVA_BASE_DOMAIN=build.invalid \
    python manage.py collectstatic --noinput \
    && chown -R eva:eva /app/staticfiles

USER ${EVA_UID}:${EVA_GID}
EXPOSE 8000
VOLUME ["/data/media"]

# Liveness of the web process; workers, beat and the consumer override this in compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py", "http", "http://127.0.0.1:8000/healthz"]

CMD ["gunicorn", "--config", "/app/deploy/gunicorn.conf.py", "eva.wsgi:application"]
