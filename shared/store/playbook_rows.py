"""Stored playbook versions: a shop's overrides documents, one row per version.

Writers take one transaction-level advisory lock before they number a version, so:

* a shop's concurrent saves get distinct, consecutive versions;
* ``seq`` (an identity) grows in commit order: a version is committed before the next
  one is numbered. A reader that has seen the newest ``seq`` has seen every version
  committed before it, which is what lets services poll ``max(seq)`` alone for changes.

Rows are never updated or deleted here; one deleted by hand is noticed when the next
version is stored (or the service restarts).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import playbook_versions as versions
from shared.domain.playbook_versions import PlaybookVersion, PlaybookVersionStamp

# pg_advisory_xact_lock key of playbook version writers: "playbook" in ASCII.
WRITE_LOCK = int.from_bytes(b"playbook", "big")


async def latest_seq(connection: AsyncConnection) -> int:
    """The newest version's ``seq`` (0 when none is stored): it changes whenever a version is stored."""
    return int(await connection.scalar(select(func.coalesce(func.max(versions.c.seq), 0))) or 0)


async def newest_versions(connection: AsyncConnection) -> list[PlaybookVersion]:
    """Each shop's newest version, by shop."""
    rows = await connection.execute(
        select(versions).ext(distinct_on(versions.c.shop_id)).order_by(versions.c.shop_id, versions.c.version.desc())
    )
    return [_version(row._mapping) for row in rows]


async def add_version(
    connection: AsyncConnection, shop_id: str, overrides: dict[str, Any], created_by: str
) -> PlaybookVersion:
    """Stores ``overrides`` as the shop's next version (the first is 1), stamped with the time it is numbered."""
    await connection.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK)))
    row = (
        await connection.execute(
            insert(versions)
            .values(
                shop_id=shop_id,
                version=select(func.coalesce(func.max(versions.c.version), 0) + 1)
                .where(versions.c.shop_id == shop_id)
                .scalar_subquery(),
                overrides=overrides,
                # The clock now, under the lock, rather than the transaction's start: versions' times keep their order.
                created_at=func.clock_timestamp(),
                created_by=created_by,
            )
            .returning(*versions.c)
        )
    ).one()
    return _version(row._mapping)


async def get_version(connection: AsyncConnection, shop_id: str, version: int | None = None) -> PlaybookVersion | None:
    """The shop's ``version`` (its newest when None), or None when it has no such version."""
    query = select(versions).where(versions.c.shop_id == shop_id)
    if version is None:
        query = query.order_by(versions.c.version.desc()).limit(1)
    else:
        query = query.where(versions.c.version == version)
    row = (await connection.execute(query)).one_or_none()
    return None if row is None else _version(row._mapping)


async def list_versions(
    connection: AsyncConnection, shop_id: str, *, before: int | None = None, limit: int = 50
) -> list[PlaybookVersionStamp]:
    """The shop's versions, newest first, older than ``before`` when given."""
    query = select(versions.c.version, versions.c.created_at, versions.c.created_by).where(
        versions.c.shop_id == shop_id
    )
    if before is not None:
        query = query.where(versions.c.version < before)
    rows = await connection.execute(query.order_by(versions.c.version.desc()).limit(limit))
    return [PlaybookVersionStamp(row.version, row.created_at, row.created_by) for row in rows]


def _version(row: Any) -> PlaybookVersion:
    return PlaybookVersion(
        shop_id=row["shop_id"],
        version=row["version"],
        overrides=row["overrides"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )
