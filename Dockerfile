# slabscope: one image for the web app, the one-shot migration and the collector.
# The base is a build argument: an official Python image by default; CI here builds from a
# debootstrap'ed Debian 12 (no registry is reachable), see ci/compose-test.sh.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /srv/slabscope
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -e . \
 && useradd --system --uid 10001 --home-dir /srv/slabscope --shell /usr/sbin/nologin slabscope \
 && mkdir -p /var/lib/slabscope/spool && chown -R slabscope /var/lib/slabscope

# The web app and the migration run as this user; the collector service runs as root
# (docker-compose.yml says why: /proc/slabinfo is mode 0400 on the host).
USER slabscope
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
  CMD python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
STOPSIGNAL SIGTERM
CMD ["slabscope", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
