# syntax=docker/dockerfile:1
# The proxy-session gateway image: a slim Python runtime with only the virtualenv and app/.
# Ref: https://docs.docker.com/build/building/multi-stage/
# Ref: https://github.com/astral-sh/uv-docker-example (builder makes the venv before the source)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV VIRTUAL_ENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The lock alone first, so editing the code keeps this (slow) dependency layer cached.
COPY requirements.lock /tmp/requirements.lock
# Runtime dependencies only, every file checked against the lock's hashes; pip itself is not
# needed at run time. Ref: https://pip.pypa.io/en/stable/topics/secure-installs/
RUN python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/python" -m pip install --require-hashes --no-deps -r /tmp/requirements.lock \
    && "$VIRTUAL_ENV/bin/python" -m pip uninstall --yes pip
COPY app/ /srv/app/
# Byte-compile ahead of time: the root filesystem is read-only at run time.
RUN "$VIRTUAL_ENV/bin/python" -m compileall -q /srv/app

FROM ${PYTHON_IMAGE} AS runtime
# An ARG declared before the first FROM is not visible inside a stage until re-declared.
# Ref: https://docs.docker.com/reference/dockerfile/#understand-how-arg-and-from-interact
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="proxy-session-gateway" \
      org.opencontainers.image.description="REST and GraphQL gateway onto Amazon Chime SDK Voice GetProxySession" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Proprietary" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /srv/app /srv/app
WORKDIR /srv
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8080
# Exec form: python is PID 1 and receives SIGTERM itself (readiness off, drain, then exit).
CMD ["python", "-m", "app"]
