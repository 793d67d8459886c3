"""Keeping a running process's playbook current with the versions stored through the API.

Every ``PLAYBOOK_REFRESH_SECONDS`` the refresher reads ``max(seq)`` of the stored versions
(one index lookup). When it changed, it reads each shop's newest version, composes it over
the playbook file's layers and installs the result in the process's ``Playbook``, which
every decision asks at decision time: a stored version is in force in every running
process about one interval after it was stored, without a restart.

Nothing here stops the process. While the database cannot be read, the playbook installed
last stays in force (``<service>.playbook_refresh_failed`` is logged, and the next reading
comes later and later, up to ``MAX_BACKOFF_S``); a stored version that no longer validates
over the playbook file is logged (``playbook.version_invalid``) and its shop keeps the
playbook it had.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import structlog
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.playbook import Playbook, ShopPlaybook
from shared.domain.playbook_versions import PlaybookVersion
from shared.observability import report_failure
from shared.playbook_file import InvalidPlaybookError, PlaybookLayers
from shared.store import playbook_rows
from shared.worker_runtime.stopping import pause

log = structlog.get_logger(__name__)

PLAYBOOK_VERSION = Gauge(
    "playbook_version",
    "The stored playbook version in force in this process, by shop (shops with stored versions only)",
    ["shop_id"],
)

READ_TIMEOUT_S = 10.0  # a reading that hangs (a lost connection) fails instead, and the next one comes
MAX_BACKOFF_S = 10.0  # the longest wait between readings while they fail

Changed = Callable[[], None]
"""Called after a new playbook is installed, e.g. to forget what was derived from the old one."""


class PlaybookRefresher:
    """Installs each shop's newest stored version in ``playbook``, over the file's ``layers``."""

    def __init__(
        self,
        engine: AsyncEngine,
        playbook: Playbook,
        layers: PlaybookLayers,
        *,
        service: str,
        interval_s: float,
        on_change: Sequence[Changed] = (),
    ) -> None:
        self._engine = engine
        self._playbook = playbook
        self._layers = layers
        self._service = service
        self._interval_s = interval_s
        self._on_change = list(on_change)
        self._file_shops = dict(layers.playbook().shops)  # a shop without stored versions: the file alone
        self._seen: int | None = None  # max(seq) at the last reading; None before the first
        self._versions: dict[str, int] = {}  # the stored version in force, by shop
        self._wake = asyncio.Event()

    @property
    def loaded(self) -> bool:
        """Whether the stored versions were read at least once."""
        return self._seen is not None

    @property
    def versions(self) -> dict[str, int]:
        """The stored version in force, by shop (shops with stored versions only)."""
        return dict(self._versions)

    def on_change(self, changed: Changed) -> None:
        self._on_change.append(changed)

    def wake(self) -> None:
        """Reads now rather than at the next interval (after this process stored a version)."""
        self._wake.set()

    async def refresh(self) -> bool:
        """One reading: installs the newest versions if they changed; True when a shop's playbook changed.

        Raises when the database cannot be read; the installed playbook then stays as it was.
        """
        async with asyncio.timeout(READ_TIMEOUT_S), self._engine.connect() as connection:
            seq = await playbook_rows.latest_seq(connection)
            if seq == self._seen:
                return False
            newest = await playbook_rows.newest_versions(connection)
        first = self._seen is None
        self._seen = seq
        return self._install(newest, first=first)

    async def run(self, stop: asyncio.Event) -> None:
        """Reads every interval (or when woken) until ``stop``; never raises."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.refresh()
                failures = 0
            except Exception as error:
                failures += 1
                report_failure(f"{self._service}.playbook_refresh", error, level="warning", failures=failures)
            wait = self._interval_s if failures == 0 else min(self._interval_s * 2 ** min(failures, 8), MAX_BACKOFF_S)
            await pause(stop, max(wait, self._interval_s), self._wake)

    def _install(self, newest: list[PlaybookVersion], *, first: bool) -> bool:
        """Composes the versions that changed, reuses the others, and swaps the shops in at once."""
        installed = self._playbook.shops
        shops: dict[str, ShopPlaybook] = dict(self._file_shops)
        versions: dict[str, int] = {}
        changed: dict[str, int] = {}
        for stored in newest:
            shop_id, in_force = stored.shop_id, self._versions.get(stored.shop_id)
            if in_force != stored.version:
                try:
                    shops[shop_id] = self._layers.compose(shop_id, stored.overrides, stored.version)
                    versions[shop_id] = changed[shop_id] = stored.version
                    continue
                except InvalidPlaybookError as error:
                    log.error("playbook.version_invalid", shop_id=shop_id, version=stored.version, problems=str(error))
            if in_force is not None:
                shops[shop_id], versions[shop_id] = installed[shop_id], in_force
        reverted = sorted(self._versions.keys() - versions.keys())  # their stored versions were deleted
        if not changed and not reverted and not first:
            return False
        self._playbook.install(shops)
        self._versions = versions
        for shop_id in reverted:
            with contextlib.suppress(KeyError):  # another playbook of this process (tests) removed it already
                PLAYBOOK_VERSION.remove(shop_id)
        for shop_id, version in changed.items():
            PLAYBOOK_VERSION.labels(shop_id).set(version)
        log.info("playbook.installed", service=self._service, versions=changed, reverted_to_file=reverted)
        for callback in self._on_change:
            try:
                callback()
            except Exception as error:
                report_failure(f"{self._service}.playbook_changed", error)
        return bool(changed or reverted)
