"""What the services tell their operators, as configured from the environment."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from observability.logs import LogFormat


class ObservabilitySettings(BaseSettings):
    """METRICS_ENABLED (default true): GET /metrics serves the service's Prometheus metrics and every HTTP
    request's duration is observed; false answers /metrics with 404.

    LOG_FORMAT (default auto): `json` writes one JSON object per log line, `console` plain text for a terminal,
    `auto` JSON unless stderr is a terminal (observability/logs.py).
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    metrics_enabled: bool = True
    log_format: LogFormat = "auto"
