"""The refresher on the real database: what it installs, when it calls back, and outages it rides out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.engagement.processor import BatchProcessor
from shared.db.schema import playbook_versions
from shared.domain.playbook import Playbook
from shared.playbook_file import PlaybookLayers, layers_of
from shared.playbook_refresh import PlaybookRefresher
from tests.builders import envelope

pytestmark = pytest.mark.integration

FILE = {"shops": {"shop-file": {"currency": "HKD"}}}
UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:9/nothing"  # the discard port: nothing listens


def _gauge(shop: str) -> float | None:
    value: float | None = REGISTRY.get_sample_value("playbook_version", {"shop_id": shop})
    return value


async def _store(engine: AsyncEngine, shop: str, version: int, overrides: dict[str, Any]) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(playbook_versions).values(shop_id=shop, version=version, overrides=overrides, created_by="test")
        )


def _refresher(engine: AsyncEngine, calls: list[str] | None = None) -> tuple[PlaybookRefresher, Playbook]:
    layers: PlaybookLayers = layers_of(FILE)
    playbook = layers.playbook()
    refresher = PlaybookRefresher(engine, playbook, layers, service="test", interval_s=0.05)
    if calls is not None:
        refresher.on_change(lambda: calls.append("changed"))
    return refresher, playbook


async def test_the_newest_version_of_each_shop_is_installed_once(engine: AsyncEngine) -> None:
    calls: list[str] = []
    refresher, playbook = _refresher(engine, calls)
    assert not refresher.loaded
    assert await refresher.refresh() is False  # nothing stored: the file alone
    assert refresher.loaded
    assert playbook.for_shop("shop-file").currency == "HKD"

    await _store(engine, "shop-a", 1, {"currency": "USD"})
    await _store(engine, "shop-a", 2, {"currency": "EUR"})
    await _store(engine, "shop-file", 1, {"timezone": "Asia/Hong_Kong"})
    calls.clear()
    assert await refresher.refresh() is True
    assert calls == ["changed"]
    shop_a, shop_file = playbook.for_shop("shop-a"), playbook.for_shop("shop-file")
    assert (shop_a.currency, shop_a.version) == ("EUR", 2)
    assert (shop_file.currency, shop_file.timezone, shop_file.version) == ("HKD", "Asia/Hong_Kong", 1)
    assert playbook.for_shop("shop-b") is playbook.default
    assert refresher.versions == {"shop-a": 2, "shop-file": 1}
    assert (_gauge("shop-a"), _gauge("shop-file")) == (2, 1)

    assert await refresher.refresh() is False  # max(seq) unchanged: one read, nothing installed
    assert calls == ["changed"]
    assert playbook.for_shop("shop-a") is shop_a

    await _store(engine, "shop-a", 3, {"currency": "GBP"})
    assert await refresher.refresh() is True
    assert playbook.for_shop("shop-a").currency == "GBP"
    assert playbook.for_shop("shop-file") is shop_file  # unchanged shops are not composed again
    assert _gauge("shop-a") == 3

    async with engine.begin() as connection:  # an operator deletes a shop's versions: back to the file
        await connection.execute(delete(playbook_versions).where(playbook_versions.c.shop_id == "shop-file"))
    await _store(engine, "shop-c", 1, {})
    assert await refresher.refresh() is True
    assert playbook.for_shop("shop-file").version == 0
    assert playbook.for_shop("shop-file").currency == "HKD"
    assert _gauge("shop-file") is None
    assert refresher.versions == {"shop-a": 3, "shop-c": 1}


async def test_a_version_that_does_not_validate_leaves_the_shop_as_it_was(engine: AsyncEngine) -> None:
    refresher, playbook = _refresher(engine)
    await _store(engine, "shop-a", 1, {"contact": {"frequency_cap": 9}})
    await refresher.refresh()
    await _store(engine, "shop-a", 2, {"contact": {"frequency_cap": "nine"}})
    await _store(engine, "shop-b", 1, {"timezone": "Nowhere/Land"})
    await _store(engine, "shop-c", 1, {"currency": "USD"})
    await refresher.refresh()
    assert (playbook.for_shop("shop-a").version, playbook.for_shop("shop-a").contact.frequency_cap) == (1, 9)
    assert playbook.for_shop("shop-b") is playbook.default
    assert playbook.for_shop("shop-c").currency == "USD"  # other shops still move on
    assert refresher.versions == {"shop-a": 1, "shop-c": 1}
    assert _gauge("shop-a") == 1


async def test_an_unreachable_database_keeps_the_playbook_and_never_raises(engine: AsyncEngine) -> None:
    await _store(engine, "shop-a", 1, {"currency": "USD"})
    refresher, playbook = _refresher(engine)
    await refresher.refresh()
    installed = playbook.shops

    lost = create_async_engine(UNREACHABLE)
    try:
        cut_off = PlaybookRefresher(lost, playbook, layers_of(FILE), service="test", interval_s=0.05)
        with pytest.raises(ConnectionRefusedError):
            await cut_off.refresh()
        stop = asyncio.Event()
        running = asyncio.create_task(cut_off.run(stop))
        await asyncio.sleep(0.5)  # several failed readings, with backoff
        assert not running.done()
        stop.set()
        await asyncio.wait_for(running, timeout=5)  # ends when asked, without raising
    finally:
        await lost.dispose()
    assert playbook.shops is installed
    assert playbook.for_shop("shop-a").currency == "USD"


async def test_run_installs_a_new_version_within_an_interval(engine: AsyncEngine) -> None:
    refresher, playbook = _refresher(engine)
    stop = asyncio.Event()
    running = asyncio.create_task(refresher.run(stop))
    try:
        await _store(engine, "shop-a", 1, {"currency": "JPY"})
        for _ in range(100):
            if playbook.for_shop("shop-a").version == 1:
                break
            await asyncio.sleep(0.02)
        assert playbook.for_shop("shop-a").currency == "JPY"
    finally:
        stop.set()
        await running


async def test_the_processor_forgets_parked_decodings_when_the_playbook_changes(engine: AsyncEngine) -> None:
    refresher, playbook = _refresher(engine)
    processor = BatchProcessor(lambda: None, playbook, max_record_bytes=1 << 20)  # type: ignore[arg-type, return-value]
    refresher.on_change(processor.playbook_changed)
    parked = json.dumps(envelope("shipment.delivered", {"order_id": "o-1", "shipment_id": "s-1"}, shop="shop-a"))
    paid = json.dumps(envelope("order.paid", shop="shop-a"))  # 129.00 CNY
    assert processor._decode_parked(parked) is not None
    assert processor._decode_parked(paid) is not None
    await _store(engine, "shop-a", 1, {"currency": "USD"})
    await refresher.refresh()
    assert processor._decode_parked(paid) is None  # decoded again: the shop no longer trades in CNY
    assert processor._decode_parked(parked) is not None
