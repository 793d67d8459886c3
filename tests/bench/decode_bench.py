"""Decode micro-benchmark: raw records to domain events, one process, no Kafka or database.

    python -m tests.bench.decode_bench [--events 100000] [--rounds 5]

Encodes ``--events`` records of the synthetic workload (tests/workload.py) once, then
times each way of decoding them, ``--rounds`` times in turn, and prints events/s (best
and median round) for:

* ``pydantic, as before``: ``validate_json`` on the discriminated union, the payload
  model copied into a dict (how the event path decoded until the domain's payloads
  were typed);
* ``pydantic to typed payloads``: the same ``validate_json``, each payload model turned
  straight into the domain's dataclass, no dict in between (``validate_with_models``);
* ``msgspec to typed payloads``: msgspec structs of the contract's common shape, turned
  into the domain's dataclasses, pydantic only for what they leave (``validate``, the
  event path's decoder).

and, for reference, each validator alone on the same bytes (``validate_json`` of the
discriminated union; msgspec into the structs), without the checks around it or the
domain's values.

Every way runs the whole of ``decode`` (size and NUL checks, business-time window, the
shop's currency), and all of them must accept the same records. Times are the process's
CPU time, which other work on a shared machine inflates less than the wall clock; the
ways run in turn within each round, so what remains of it hits them alike.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from services.engagement.decode import Rejection, decode, validate_with_models
from shared.contract.event_structs import DECODER
from shared.contract.events import EVENT_ADAPTER
from shared.domain.playbook import Playbook
from shared.playbook_file import load_playbook
from tests.workload import workload

EVENTS_PER_MEMBER = 16.3
MAX_BYTES = 65536


@dataclass(frozen=True, slots=True)
class EventBefore:
    """The domain's event before its payloads were typed: ``data`` a mapping."""

    source: str
    id: str
    type: str
    time: datetime
    shop_id: str
    member_id: str
    data: Mapping[str, Any]


def decode_as_before(value: bytes, playbook: Playbook, now: datetime) -> Any:
    """The event path's decode before typed payloads: the payload model copied into a dict."""
    if len(value) > MAX_BYTES or b"\\u0000" in value:
        return None
    try:
        parsed: Any = EVENT_ADAPTER.validate_json(value)
    except ValidationError:
        return None
    shop = playbook.for_shop(parsed.shopid)
    if not shop.business_time.contains(parsed.time, now):
        return None
    data = dict(parsed.data.__dict__)
    currency = data.get("currency")
    if currency is not None and currency != shop.currency:
        return None
    return EventBefore(
        source=parsed.source,
        id=parsed.id,
        type=parsed.type,
        time=parsed.time,
        shop_id=parsed.shopid,
        member_id=parsed.memberid,
        data=data,
    )


def variants(playbook: Playbook, now: datetime) -> dict[str, Callable[[bytes], object]]:
    return {
        "pydantic, as before": lambda value: decode_as_before(value, playbook, now),
        "pydantic to typed payloads": lambda value: decode(
            value, playbook, MAX_BYTES, now, validator=validate_with_models
        ),
        "msgspec to typed payloads": lambda value: decode(value, playbook, MAX_BYTES, now),
    }


def validators_alone() -> dict[str, Callable[[bytes], object]]:
    return {
        "pydantic validate_json alone": EVENT_ADAPTER.validate_json,
        "msgspec structs alone": DECODER.decode,
    }


def run(values: list[bytes], decoder: Callable[[bytes], object]) -> tuple[float, int]:
    """Seconds to decode every value, and how many were accepted."""
    gc.collect()
    started = time.process_time()
    results = [decoder(value) for value in values]
    elapsed = time.process_time() - started
    return elapsed, sum(1 for result in results if result is not None and not isinstance(result, Rejection))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    members = int(args.events / EVENTS_PER_MEMBER * 1.1) + 1
    values = [json.dumps(event).encode() for event in workload(members)][: args.events]
    playbook = load_playbook()
    now = datetime.now(UTC)
    ways = variants(playbook, now)
    alone = validators_alone()
    seconds: dict[str, list[float]] = {name: [] for name in [*ways, *alone]}
    accepted: dict[str, set[int]] = {name: set() for name in ways}
    for _ in range(args.rounds):
        for name, decoder in [*ways.items(), *alone.items()]:  # in turn: a busy moment hits every way alike
            elapsed, count = run(values, decoder)
            seconds[name].append(elapsed)
            if name in accepted:
                accepted[name].add(count)
    counts = {count for found in accepted.values() for count in found}
    if counts != {len(values)}:
        print(f"the ways disagree or reject workload records: accepted {accepted}", file=sys.stderr)
        return 1

    print(f"decode of {len(values):,} workload records, {args.rounds} rounds, Python {platform.python_version()}")
    print(f"{'way':<28} {'best events/s':>14} {'median events/s':>16} {'us/event':>9}")
    baseline = len(values) / min(seconds["pydantic, as before"])
    for name, taken in seconds.items():
        if name in alone and name == next(iter(alone)):
            print("validators alone, for reference:")
        best, median = len(values) / min(taken), len(values) / statistics.median(taken)
        print(f"{name:<28} {best:>14,.0f} {median:>16,.0f} {1e6 / best:>9.2f}  x{best / baseline:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
