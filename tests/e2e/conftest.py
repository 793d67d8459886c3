"""Fixtures that run the services as separate processes, as they run in production."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ServiceProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts ``python -m services.<name>`` with the test's database and topics; stops it after."""
    started: list[ServiceProcess] = []

    def start(name: str, **overrides: str) -> ServiceProcess:
        env = {
            **service_env,
            "ENGAGEMENT_METRICS_PORT": str(free_port()),
            "NOTIFIER_METRICS_PORT": str(free_port()),
            "API_PORT": str(free_port()),
            "ENGAGEMENT_BATCH_TIMEOUT_MS": "50",
            **overrides,
        }
        service = ServiceProcess(f"services.{name}", env, tmp_path / f"{name}-{len(started)}.log").start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
    for service in started:
        print(f"--- {service.module} log ---\n{service.log_tail()}")
