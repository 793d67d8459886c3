"""Budget spend per (shop, scope, period): locked, loaded for a batch, written back with its spending.

Each (shop, scope) is locked with a transaction-level advisory lock, taken in hash order
after the batch's member locks, so two transactions never spend the same budget at once and
never wait on each other in a cycle. Only shops whose playbook budgets a rule pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import budget_spend
from shared.domain.budgets import BudgetBook, SpendRow
from shared.store.bulk_sql import Key, json_rows, key_arrays, upsert

_LOCK = text(
    "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT hashtextextended(s || '|' || c, 0) AS h "
    "FROM unnest(CAST(:a AS text[]), CAST(:b AS text[])) AS k(s, c) ORDER BY h) AS locks"
)
_LOAD = text(
    "SELECT b.shop_id, b.scope, b.period_start, b.spent, b.issued FROM budget_spend b "
    "JOIN unnest(CAST(:a AS text[]), CAST(:b AS text[])) AS k(shop_id, scope) USING (shop_id, scope) "
    "WHERE b.period_start >= :since"
)
_COLUMNS = ["shop_id", "scope", "period_start", "spent", "issued"]
_SAVE = text(upsert(budget_spend, _COLUMNS, ["shop_id", "scope", "period_start"]))


async def lock_budgets(connection: AsyncConnection, scopes: Sequence[Key], since: date) -> BudgetBook:
    """Locks the budgets of these (shop, scope)s and loads their spend from ``since`` on."""
    book = BudgetBook(since=dict.fromkeys(scopes, since))
    if not scopes:
        return book
    params = key_arrays(scopes)
    await connection.execute(_LOCK, params)
    for shop, scope, start, spent, issued in await connection.execute(_LOAD, {**params, "since": since}):
        book.spend[(shop, scope, start)] = SpendRow(spent, issued)
    return book


async def save_budgets(connection: AsyncConnection, book: BudgetBook) -> None:
    """The spend of the periods the batch spent in."""
    rows = [[*key, book.spend[key].spent, book.spend[key].issued] for key in sorted(book.changed)]
    if rows:
        await connection.execute(_SAVE, json_rows(rows))
