"""The stop event every loop of a worker watches: set by SIGTERM/SIGINT, waited on by pauses."""

from __future__ import annotations

import asyncio
import signal

import structlog

log = structlog.get_logger(__name__)


def install_signal_handlers(stop: asyncio.Event, service: str) -> None:
    """SIGTERM and SIGINT set ``stop``: loops finish what they hold and end."""
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):

        def handle(name: str = number.name) -> None:
            if not stop.is_set():
                log.info(f"{service}.stopping", signal=name)
            stop.set()

        loop.add_signal_handler(number, handle)


async def pause(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Waits ``seconds``, or less once ``stop`` (or ``wake``, when given) is set."""
    events = [stop] if wake is None else [stop, wake]
    if seconds <= 0 or any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
