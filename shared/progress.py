"""Whether each assigned partition is making progress: the truth behind readiness.

A consumer loop can be alive, connected and answering health checks while one of its
partitions goes nowhere (a record it cannot get past, a send that never completes).
A partition counts as stalled when records are waiting on it (its end offset lies past
the offset committed last) and that committed offset has not moved for longer than
``stall_after_s``; an idle partition, with nothing waiting, is never stalled. The records
waiting on each partition are its lag.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition


class PartitionProgress:
    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_after_s = stall_after_s
        self._clock = clock
        self._committed: dict[TopicPartition, int] = {}
        self._since: dict[TopicPartition, float] = {}
        self.stalled: list[TopicPartition] = []
        self.lag: dict[TopicPartition, int] = {}

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Called after each commit with the offsets committed."""
        now = self._clock()
        for partition, offset in offsets.items():
            if self._committed.get(partition) != offset:
                self._committed[partition] = offset
                self._since[partition] = now

    def judge(self, partition: TopicPartition, end: int | None, committed: int) -> bool:
        """True when ``partition`` has records waiting and its committed offset stood still too long."""
        now = self._clock()
        if self._committed.get(partition) != committed:
            self._committed[partition] = committed
            self._since[partition] = now
        if end is None or end <= committed:
            self._since[partition] = now  # nothing waiting: the clock starts when records arrive
            return False
        return now - self._since[partition] > self._stall_after_s

    async def check(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The assigned partitions that are stalled now; also kept in ``stalled``, their lag in ``lag``.

        The end offset is what the consumer last learnt from a fetch (the last stable
        offset under read_committed); a partition first seen is measured from the group's
        committed offset, else from the log's start.
        """
        assigned = set(consumer.assignment())
        for gone in set(self._committed) - assigned:
            del self._committed[gone]
            self._since.pop(gone, None)
        stalled = []
        lag = {}
        for partition in sorted(assigned):
            committed = self._committed.get(partition)
            if committed is None:
                committed = await consumer.committed(partition)
                if committed is None:
                    committed = (await consumer.beginning_offsets([partition]))[partition]
            end = consumer.last_stable_offset(partition)
            if end is None:
                end = consumer.highwater(partition)
            if self.judge(partition, end, committed):
                stalled.append(partition)
            if end is not None:
                lag[partition] = max(0, end - committed)
        self.stalled = stalled
        self.lag = lag
        return stalled
