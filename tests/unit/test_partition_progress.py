"""When a partition counts as stalled: records waiting and the committed offset standing still."""

from __future__ import annotations

from aiokafka import TopicPartition

from shared.progress import PartitionProgress

P = TopicPartition("commerce.orders", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_with_nothing_waiting_is_never_stalled() -> None:
    clock = Clock()
    progress = PartitionProgress(60, clock)
    assert progress.judge(P, end=10, committed=10) is False
    clock.now += 3600
    assert progress.judge(P, end=10, committed=10) is False


def test_records_waiting_with_no_commit_for_longer_than_the_limit_is_stalled() -> None:
    clock = Clock()
    progress = PartitionProgress(60, clock)
    assert progress.judge(P, end=12, committed=10) is False
    clock.now += 60
    assert progress.judge(P, end=12, committed=10) is False
    clock.now += 0.5
    assert progress.judge(P, end=12, committed=10) is True


def test_the_clock_starts_when_records_arrive_not_at_the_last_commit() -> None:
    clock = Clock()
    progress = PartitionProgress(60, clock)
    progress.committed({P: 10})
    clock.now += 3600  # idle for an hour
    assert progress.judge(P, end=10, committed=10) is False
    clock.now += 1
    assert progress.judge(P, end=11, committed=10) is False  # a record just arrived
    clock.now += 61
    assert progress.judge(P, end=11, committed=10) is True


def test_a_commit_that_moves_restarts_the_clock() -> None:
    clock = Clock()
    progress = PartitionProgress(60, clock)
    assert progress.judge(P, end=100, committed=10) is False
    clock.now += 50
    progress.committed({P: 20})
    clock.now += 50
    assert progress.judge(P, end=100, committed=20) is False
    clock.now += 11
    assert progress.judge(P, end=100, committed=20) is True


def test_an_unknown_end_offset_is_not_judged_stalled() -> None:
    clock = Clock()
    progress = PartitionProgress(1, clock)
    clock.now += 100
    assert progress.judge(P, end=None, committed=0) is False
