"""What every channel offers, and how it says a delivery did not happen."""

from __future__ import annotations

from typing import Protocol

from shared.contract.actions import Action


class ConfigurationError(RuntimeError):
    """A channel is enabled without what it needs; the notifier refuses to start."""


class DeliveryError(Exception):
    """The message was not delivered; ``reason`` goes into the ``failed`` outcome."""

    def __init__(self, reason: str, attempts: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class Channel(Protocol):
    """A way to reach a member. ``deliver`` returns the attempts it took or raises DeliveryError."""

    @property
    def name(self) -> str: ...

    async def deliver(self, action: Action, notification_id: str) -> int: ...

    async def aclose(self) -> None: ...
