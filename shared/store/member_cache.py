"""Members this process wrote last, kept in memory so a batch loads only what it has not seen.

An entry is valid only while the member's row is the version this process committed:
PostgreSQL stamps every row version with the transaction that wrote it (``xmin``), and a
batch reads those stamps under the members' row locks. Any other writer (a scheduler run,
a redemption, another instance after a rebalance, an operator's fix) leaves a different
stamp, and the member is loaded again. An entry is taken out while a unit of work uses it
and put back only after that unit commits, so a rolled-back batch can never leave its
in-memory changes behind.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from shared.domain.model import Member, Order
from shared.store.bulk_sql import Key


@dataclass(slots=True)
class CachedMember:
    stamp: int  # the xmin of the row version this entry mirrors
    member: Member
    orders: dict[str, Order]


class MemberCache:
    """At most ``capacity`` members, least recently used out first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Key, CachedMember] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: Key, stamp: int) -> CachedMember | None:
        """The entry if it mirrors row version ``stamp``; it leaves the cache either way."""
        entry = self._entries.pop(key, None)
        if entry is not None and entry.stamp == stamp:
            self.hits += 1
            return entry
        self.misses += 1
        return None

    def put(self, key: Key, entry: CachedMember) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forgets everything, e.g. when this process no longer owns the members' partitions."""
        self._entries.clear()
