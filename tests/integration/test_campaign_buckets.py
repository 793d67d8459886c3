"""The SQL that runs a wave computes the same assignment buckets as the domain, member for member."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.campaigns import HOLDOUT, bucket, bucket_sql

pytestmark = pytest.mark.integration

MEMBERS = [f"m-{i}" for i in range(3_000)] + ["会员-七", "m'quote", "m with space", "ℳ-𝟙"]


@pytest.mark.parametrize("purpose", [HOLDOUT, "strategy"])
async def test_sql_buckets_equal_the_domains(engine: AsyncEngine, purpose: str) -> None:
    statement = text(f"SELECT m, {bucket_sql('campaign', 'm', purpose)} FROM unnest(CAST(:members AS text[])) AS u(m)")
    async with engine.connect() as connection:
        rows = (await connection.execute(statement, {"campaign": "camp-Ω-1", "members": MEMBERS})).all()
    assert dict(rows) == {m: bucket("camp-Ω-1", m, purpose) for m in MEMBERS}
