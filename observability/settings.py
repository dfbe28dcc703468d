"""What the services tell their operators, as configured from the environment."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ObservabilitySettings(BaseSettings):
    """METRICS_ENABLED (default true): GET /metrics serves the service's Prometheus metrics and every HTTP
    request's duration is observed; false answers /metrics with 404."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    metrics_enabled: bool = True
