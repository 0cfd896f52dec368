# The Heimvakt server: `heimvakt up` serves the API and the dashboard on one port and runs the
# MQTT ingest. Built and run by compose.yaml beside this file.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid and gid, so the ownership of volumes stays the same across rebuilds.
RUN groupadd --system --gid 10001 heimvakt \
    && useradd --system --uid 10001 --gid heimvakt --home-dir /var/lib/heimvakt \
        --create-home --shell /usr/sbin/nologin heimvakt

COPY . /tmp/heimvakt-src
RUN pip install /tmp/heimvakt-src && rm -rf /tmp/heimvakt-src

# Inside a container the server listens on every interface; the port mapping decides who can
# reach it. The data directory is owned by the heimvakt user, so a named volume mounted there is
# writable by it.
ENV HEIMVAKT_HTTP_HOST=0.0.0.0 \
    HEIMVAKT_HTTP_PORT=8000 \
    HEIMVAKT_DATA_DIR=/var/lib/heimvakt

USER 10001:10001
WORKDIR /var/lib/heimvakt
EXPOSE 8000
CMD ["heimvakt", "up"]
