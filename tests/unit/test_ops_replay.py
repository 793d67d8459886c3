"""Replay's pure parts: a dead letter back to its original record, and how a stopped replay goes on."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import ConsumerRecord

from services.engagement.dead_letters import reference, whole
from services.engagement.decode import Rejection
from services.ops.arguments import OffsetBounds
from services.ops.replay import (
    Outgoing,
    PartitionTally,
    ReplayRequest,
    ReplayResult,
    Stored,
    resume_commands,
    stored_id,
    summary_grids,
    unwrap,
)

RECEIVED = datetime(2026, 3, 1, 2, 25, tzinfo=UTC)
REJECTED = Rejection("member_quarantined", "the member is quarantined")


def record(
    value: bytes | None, key: bytes | None = b"shop-1:m-1", *, topic: str = "commerce.orders", offset: int = 7
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=1,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(("traceparent", b"00-abc-01"),),
    )


def dead_letter(original: ConsumerRecord[bytes, bytes], wrapped: bytes) -> ConsumerRecord[bytes, bytes]:
    """The record on the dead-letter topic: keyed like the original, the wrapper as its value."""
    return record(wrapped, original.key, topic="commerce.dlq", offset=3)


def test_a_dead_letter_gives_back_the_original_bytes_key_and_topic() -> None:
    value = json.dumps({"id": "evt-1", "data": {"note": "ü, \u2028 and bytes"}}).encode()
    original = record(value)
    found = unwrap(dead_letter(original, whole(original, REJECTED, RECEIVED)), None)
    assert found == Outgoing("commerce.orders", b"shop-1:m-1", value, (("traceparent", b"00-abc-01"),))


def test_a_target_overrides_where_the_original_goes() -> None:
    original = record(b"{}")
    found = unwrap(dead_letter(original, whole(original, REJECTED, RECEIVED)), "replayed.orders")
    assert isinstance(found, Outgoing)
    assert found.topic == "replayed.orders"


def test_a_record_without_a_value_comes_back_empty_and_a_key_less_one_without_a_key() -> None:
    original = record(None, None)
    found = unwrap(dead_letter(original, whole(original, REJECTED, RECEIVED)), None)
    assert found == Outgoing("commerce.orders", None, b"", (("traceparent", b"00-abc-01"),))


def test_a_dead_letter_stored_whole_is_read_back_by_its_id() -> None:
    original = record(b"x" * 5000)
    found = unwrap(dead_letter(original, reference(original, REJECTED, RECEIVED, 42)), None)
    assert found == Stored(42, "commerce.orders", (("traceparent", b"00-abc-01"),))


def test_a_record_that_is_not_a_dead_letter_is_left_out() -> None:
    for value in (b"not json", b"{}", json.dumps({"topic": "t", "partition": 0}).encode(), None):
        assert unwrap(record(value, topic="commerce.dlq"), None) is None
    wrapper: dict[str, Any] = json.loads(whole(record(b"{}"), REJECTED, RECEIVED))
    assert unwrap(record(json.dumps({**wrapper, "value": "not base64!"}).encode()), None) is None
    assert unwrap(record(json.dumps({**wrapper, "value": None, "stored_as": "elsewhere/1"}).encode()), None) is None


def test_stored_ids_are_read_from_the_documented_reference_only() -> None:
    assert stored_id("dead_letters/42") == 42
    for other in (None, "", "dead_letters/", "dead_letters/-1", "dead_letters/4x", "x/dead_letters/4"):
        assert stored_id(other) is None


def test_a_stopped_replay_goes_on_from_each_unfinished_partitions_next_offset() -> None:
    request = ReplayRequest("commerce.orders", None, OffsetBounds(), "copy.orders", b"shop-1:m-1", False, 500)
    partitions = [
        PartitionTally(0, 0, 100, 100, read=100, produced=100),
        PartitionTally(1, 10, 90, 60, read=50, produced=50),
        PartitionTally(2, 5, 5, 5),
    ]
    assert resume_commands(request, partitions) == [
        "engagement-ops replay commerce.orders --partition 1 --from-offset 60 --to-offset 90 "
        "--target copy.orders --key shop-1:m-1"
    ]
    result = ReplayResult("commerce.orders", partitions, Counter({"copy.orders": 150}))
    table, targets = summary_grids(result, dry_run=False)
    assert table.rows == [
        ("0", "0", "100", "100", "100", "done"),
        ("1", "10", "90", "50", "50", "60"),
        ("2", "5", "5", "0", "0", "done"),
    ]
    assert targets.rows == [("copy.orders", "150")]
    assert summary_grids(result, dry_run=True)[1].headers == ("target", "would produce")
