# One image for both services; the command picks which one runs:
#   python -m order_service        (default; the order-service console script once installed)
#   python -m fulfillment_service  (fulfillment-service)
#   python -m repair ...            (order-repair: dead-lettered records listed and replayed)
FROM python:3.11-slim

# PYTHONPATH: the packages run from /app as they sit in the repository, with no build step: the image
# needs nothing beyond the pinned lock (building the project would fetch an unpinned setuptools), and
# files kept next to the code, such as the Alembic migrations, come along unchanged.
# HOST: listen on every interface so the published port reaches the service.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    HOST=0.0.0.0

WORKDIR /app

# Dependencies before the code, so code changes reuse this layer. Only the runtime lock (what the services
# import, no development tools), every file checked against its hash and installed from a wheel: nothing is
# compiled, so the image needs no build tools. pip goes afterwards: the running image installs nothing.
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir --require-hashes --only-binary :all: -r requirements-runtime.lock \
    && pip uninstall --yes --quiet pip setuptools wheel \
    && rm requirements-runtime.lock

# /data holds the SQLite files. The settings' default SQLite paths are relative (var/...),
# so var points at the volume too and a run without DATABASE_URL still keeps its data there.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown app:app /data \
    && ln -s /data /app/var

COPY contract_models ./contract_models
COPY contracts ./contracts
COPY events ./events
COPY messaging ./messaging
COPY outbox ./outbox
COPY persistence ./persistence
COPY httpapi ./httpapi
COPY observability ./observability
COPY order_service ./order_service
COPY fulfillment_service ./fulfillment_service
COPY repair ./repair

# Numeric, so runtimes that enforce non-root can verify it without reading /etc/passwd.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 5001 5002

# Liveness of whichever service the command runs (httpapi.liveness_probe): its process answers HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "httpapi.liveness_probe"]

# Exec form: python is PID 1 and receives SIGTERM, which starts the services' graceful shutdown.
CMD ["python", "-m", "order_service"]
