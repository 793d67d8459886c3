"""Delivery channels: a small protocol and the factory that builds the enabled ones."""

from __future__ import annotations

from services.notifier.channels.base import Channel, ConfigurationError, DeliveryError
from services.notifier.channels.log import LogChannel
from services.notifier.channels.webhook import WebhookChannel
from shared.settings import Settings

__all__ = ["Channel", "ConfigurationError", "DeliveryError", "LogChannel", "WebhookChannel", "build_channels"]

KNOWN = ("log", "webhook")


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels named in settings.notifier_channels; refuses unknown or half-configured ones."""
    names = list(dict.fromkeys(settings.notifier_channels))
    if settings.environment != "development" and "webhook" in names and settings.weak_secrets():
        raise ConfigurationError(f"weak secrets outside development: {', '.join(settings.weak_secrets())}")
    if not names:
        raise ConfigurationError("NOTIFIER_CHANNELS is empty: enable at least one channel")
    unknown = [name for name in names if name not in KNOWN]
    if unknown:
        raise ConfigurationError(f"unknown notifier channel(s) {unknown}; known: {list(KNOWN)}")
    channels: dict[str, Channel] = {}
    for name in names:
        if name == "log":
            channels[name] = LogChannel(settings.notifier_log_path)
        else:
            if (
                not settings.webhook_url
                or settings.webhook_secret is None
                or not settings.webhook_secret.get_secret_value()
            ):
                raise ConfigurationError("the webhook channel needs WEBHOOK_URL and WEBHOOK_SECRET")
            channels[name] = WebhookChannel(
                url=settings.webhook_url,
                secret=settings.webhook_secret.get_secret_value().encode(),
                timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts,
                backoff_initial_s=settings.webhook_backoff_initial_s,
                backoff_max_s=settings.webhook_backoff_max_s,
            )
    return channels
