"""Service configuration, read once from the environment (12-factor).

Every knob lives here; docs/configuration.md lists them. Secrets (API tokens,
webhook secret, database password) come only from the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_PLAYBOOK = Path(__file__).with_name("playbook_default.yaml")


class Topics(BaseSettings):
    """Kafka topic names (contract section 1); each one can be renamed."""

    model_config = SettingsConfigDict(env_prefix="TOPIC_", extra="ignore")

    members: str = "commerce.members"
    orders: str = "commerce.orders"
    shipments: str = "commerce.shipments"
    refunds: str = "commerce.refunds"
    reviews: str = "commerce.reviews"
    actions: str = "member.actions"
    notifications: str = "member.notifications"
    dlq: str = "commerce.dlq"

    @property
    def inputs(self) -> list[str]:
        return [self.members, self.orders, self.shipments, self.refunds, self.reviews]


class Settings(BaseSettings):
    """Settings common to every service."""

    model_config = SettingsConfigDict(extra="ignore")

    environment: str = Field(default="development", alias="APP_ENV")
    database_url: SecretStr = SecretStr("postgresql+asyncpg://engagement@127.0.0.1:55432/engagement")
    database_pool_size: int = 10
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_client_id: str = "member-engagement"
    playbook_path: Path = DEFAULT_PLAYBOOK
    # How often each process looks for playbook versions stored through the API (one index read).
    playbook_refresh_seconds: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    metrics_host: str = "127.0.0.1"
    create_missing_topics: bool = True  # output topics (dead letters, actions, outcomes) created at start-up
    new_topic_partitions: int = 3
    new_topic_replication_factor: int = 1
    stall_after_s: float = 60.0  # a partition with records waiting and no commit for this long is stalled

    # Engagement service
    engagement_group_id: str = "engagement"
    engagement_metrics_port: int = 9101
    engagement_batch_max_records: int = 2000
    engagement_batch_timeout_ms: int = 100
    engagement_member_cache_size: int = 100_000  # members kept in memory between batches; 0 = off
    engagement_lanes: int = 2  # transactions per batch run side by side, each over its own members
    max_record_bytes: int = 65536
    dlq_max_record_bytes: int = 1_000_000  # larger dead-letter records are kept in PostgreSQL, a reference sent
    dlq_send_timeout_s: float = 30.0
    relay_batch_size: int = 1000
    relay_idle_interval_ms: int = 50
    scheduler_interval_s: float = 60.0  # the background scheduler runs as of the wall clock this often; 0 = off
    scheduler_batch_size: int = 500
    campaign_batch_size: int = Field(default=5000, gt=0)  # a campaign wave's members handled per transaction
    campaign_lanes: int = Field(default=2, ge=1, le=16)  # a wave's batches decided side by side, one connection each

    # Notifier
    notifier_group_id: str = "notifier"
    notifier_metrics_port: int = 9102
    notifier_channels: Annotated[list[str], NoDecode] = ["log"]
    notifier_log_path: Path | None = None
    notifier_deferred_poll_ms: int = 1000
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 5
    webhook_backoff_initial_s: float = 0.5
    webhook_backoff_max_s: float = 10.0

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_tokens: Annotated[list[SecretStr], NoDecode] = []  # every scope: reads, redemptions, the scheduler
    api_read_tokens: Annotated[list[SecretStr], NoDecode] = []  # read-only: GET routes only
    api_max_body_bytes: int = Field(default=1_048_576, gt=0)  # larger request bodies answer 413

    @field_validator("notifier_channels", "api_tokens", "api_read_tokens", mode="before")
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def weak_secrets(self) -> list[str]:
        """Names of secrets that are missing or too short to be real: fatal outside development."""
        weak = []
        if any(len(token.get_secret_value()) < 16 for token in self.api_tokens):
            weak.append("API_TOKENS (each token needs at least 16 characters)")
        if any(len(token.get_secret_value()) < 16 for token in self.api_read_tokens):
            weak.append("API_READ_TOKENS (each token needs at least 16 characters)")
        if "webhook" in self.notifier_channels and (
            self.webhook_secret is None or len(self.webhook_secret.get_secret_value()) < 16
        ):
            weak.append("WEBHOOK_SECRET (at least 16 characters)")
        return weak

    @property
    def topics(self) -> Topics:
        return Topics()

    @property
    def async_database_url(self) -> str:
        """DATABASE_URL with the asyncpg driver, whatever scheme the user gave."""
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
