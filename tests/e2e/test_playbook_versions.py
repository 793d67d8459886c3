"""A playbook version stored through the API governs the running services' later decisions, without a restart.

The engagement service, the notifier and the API run as processes, each polling the stored
versions every ``PLAYBOOK_REFRESH_SECONDS`` (1 s, the default). Each one's ``/metrics``
shows the version it has in force (``playbook_version{shop_id}``); the test waits for it
in all three, then shows the event path deciding under it. How long installation took
in each process is printed (``-s``), not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import SHANGHAI, envelope
from tests.support import ServiceProcess, eventually, produce, wait_until_processed

pytestmark = pytest.mark.integration

SHOP = "shop-1"
MEMBER = "m-playbook"
AUTH = {"Authorization": "Bearer test-token"}
JOINED = datetime(2025, 6, 1, 9, 0, tzinfo=SHANGHAI)
SWITCH_OFF = {"rules": {"payment_confirmation": {"enabled": False}}}
Json = dict[str, Any]


def _event(kind: str, number: int, at: datetime, **data: Any) -> Json:
    return envelope(kind, data, event_id=f"{MEMBER}-{number}", at=at, member=MEMBER, shop=SHOP, source="test")


def _paid(number: int, order_id: str, at: datetime) -> Json:
    return _event("order.paid", number, at, order_id=order_id, amount="120.00", currency="CNY")


async def _version_shown(client: httpx.AsyncClient, url: str) -> float | None:
    """``playbook_version{shop_id=SHOP}`` on a service's /metrics; None while it shows none."""
    try:
        text = (await client.get(url)).text
    except httpx.TransportError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "playbook_version":
            for sample in family.samples:
                if sample.labels.get("shop_id") == SHOP:
                    return float(sample.value)
    return None


async def test_a_stored_version_is_installed_everywhere_and_governs_later_decisions(
    engine: AsyncEngine, start_service: Callable[..., ServiceProcess]
) -> None:
    engagement = start_service("engagement")
    notifier = start_service("notifier")
    api = start_service("api")
    topics = {key: value for key, value in engagement.env.items() if key.startswith("TOPIC_")}
    metrics = {
        "engagement": f"http://127.0.0.1:{engagement.env['ENGAGEMENT_METRICS_PORT']}/metrics",
        "notifier": f"http://127.0.0.1:{notifier.env['NOTIFIER_METRICS_PORT']}/metrics",
        "api": f"http://127.0.0.1:{api.env['API_PORT']}/metrics",
    }
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api.env['API_PORT']}", headers=AUTH, timeout=30
    ) as client:

        async def ready() -> bool:
            for url in metrics.values():
                try:
                    if (await client.get(url.replace("/metrics", "/readyz"))).status_code != 200:
                        return False
                except httpx.TransportError:
                    return False
            return True

        await eventually(ready, timeout_s=60)

        async def actions() -> list[Json]:
            response = await client.get(f"/v1/shops/{SHOP}/members/{MEMBER}/actions", params={"limit": 200})
            assert response.status_code == 200, response.text
            return list(response.json()["items"])

        # Before: the default playbook confirms a payment.
        await produce(topics, [_event("member.joined", 1, JOINED, channel="app"), _paid(2, "o-1", JOINED)])
        await wait_until_processed(engine, 2, timeout_s=60)
        before = await actions()
        assert {(a["rule"], a["trigger"]["event_id"]) for a in before} >= {("payment_confirmation", f"{MEMBER}-2")}
        assert (await client.get(f"/v1/shops/{SHOP}/playbook")).json()["version"] == 0

        stored = await client.put(f"/v1/shops/{SHOP}/playbook", json=SWITCH_OFF)
        assert stored.status_code == 200, stored.text
        assert stored.json()["version"] == 1
        stored_at = time.monotonic()

        # Each running process installs it; none restarts.
        for service, url in metrics.items():

            async def installed(url: str = url) -> bool:
                return await _version_shown(client, url) == 1

            await eventually(installed, timeout_s=15, interval_s=0.05)
            print(f"playbook version 1 in force in {service} {time.monotonic() - stored_at:.2f} s after it was stored")
        assert all(
            process.process is not None and process.process.poll() is None for process in (engagement, notifier, api)
        )

        # After: the next paid order is decided under version 1: no confirmation, the rest as before.
        await produce(topics, [_paid(3, "o-2", JOINED + timedelta(days=2))])
        await wait_until_processed(engine, 3, timeout_s=60)
        after = await actions()
        confirmations = sorted(a["trigger"]["event_id"] for a in after if a["rule"] == "payment_confirmation")
        assert confirmations == [f"{MEMBER}-2"]  # the first order's, from before the change
        assert [a["trigger"]["event_id"] for a in after if a["rule"] == "repurchase_gift"] == [f"{MEMBER}-3"]
    installed_lines = [line for line in engagement.log_path.read_text().splitlines() if "playbook.installed" in line]
    assert any('"versions": {"shop-1": 1}' in line for line in installed_lines), installed_lines
