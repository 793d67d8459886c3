"""Settings read from the environment."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.settings import Settings


def test_short_tokens_and_webhook_secrets_count_as_weak_outside_development() -> None:
    weak = Settings(
        api_tokens=[SecretStr("short")],
        api_read_tokens=[SecretStr("short-too")],
        notifier_channels=["log", "webhook"],
        webhook_secret=None,
    )
    assert len(weak.weak_secrets()) == 3
    strong = Settings(
        api_tokens=[SecretStr("x" * 32)], notifier_channels=["webhook"], webhook_secret=SecretStr("y" * 32)
    )
    assert strong.weak_secrets() == []


def test_lists_and_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKENS", " a-token , another ")
    monkeypatch.setenv("API_READ_TOKENS", "a-reader")
    monkeypatch.setenv("NOTIFIER_CHANNELS", "log,webhook")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("TOPIC_ORDERS", "shop.orders")
    settings = Settings()
    assert [t.get_secret_value() for t in settings.api_tokens] == ["a-token", "another"]
    assert [t.get_secret_value() for t in settings.api_read_tokens] == ["a-reader"]
    assert settings.notifier_channels == ["log", "webhook"]
    assert settings.async_database_url == "postgresql+asyncpg://u:p@db:5432/x"
    assert settings.topics.orders == "shop.orders"
    assert "p@db" not in repr(settings)
