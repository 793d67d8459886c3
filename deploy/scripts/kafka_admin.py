"""Small Kafka admin helper for the local/CI broker (standalone: aiokafka only).

Usage:
    kafka_admin.py [--bootstrap HOST:PORT] wait [--timeout 120]
    kafka_admin.py [--bootstrap HOST:PORT] create-topics NAME:PARTITIONS [...]
    kafka_admin.py [--bootstrap HOST:PORT] list

`wait` succeeds once a metadata request (list topics) answers and the cluster
reports a controller and at least one broker. `create-topics` creates the
missing topics and leaves existing ones alone (it warns when an existing topic
has a different partition count). Exit status is non-zero on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

TOPIC_ALREADY_EXISTS = 36


def _log(message: str) -> None:
    print(f"kafka_admin: {message}", file=sys.stderr, flush=True)


async def _admin(bootstrap: str, timeout_s: float) -> AIOKafkaAdminClient:
    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="member-engagement-admin",
        request_timeout_ms=int(max(timeout_s, 5) * 1000),
    )
    try:
        await asyncio.wait_for(client.start(), timeout=timeout_s)
    except BaseException:
        await client.close()
        raise
    return client


async def _probe(bootstrap: str) -> list[str]:
    client = await _admin(bootstrap, 10)
    try:
        cluster = await asyncio.wait_for(client.describe_cluster(), timeout=10)
        if not cluster.get("brokers"):
            raise RuntimeError("no broker registered yet")
        if cluster.get("controller_id", -1) < 0:
            raise RuntimeError("no active controller yet")
        return await asyncio.wait_for(client.list_topics(), timeout=10)
    finally:
        await client.close()


async def cmd_wait(bootstrap: str, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            topics = await _probe(bootstrap)
        except Exception as exc:  # any failure means "not ready yet"
            last_error = exc
            await asyncio.sleep(1)
            continue
        _log(f"broker at {bootstrap} is ready ({len(topics)} topics)")
        return 0
    _log(f"broker at {bootstrap} not ready after {timeout_s:.0f}s: {last_error!r}")
    return 1


def _parse_specs(specs: list[str]) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for spec in specs:
        name, sep, count = spec.rpartition(":")
        if not sep or not name or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"kafka_admin: bad topic spec {spec!r}, expected NAME:PARTITIONS")
        wanted[name] = int(count)
    return wanted


async def cmd_create_topics(bootstrap: str, specs: list[str], replication: int) -> int:
    wanted = _parse_specs(specs)
    client = await _admin(bootstrap, 30)
    try:
        existing = set(await client.list_topics())
        missing = [name for name in wanted if name not in existing]
        failures = 0
        if missing:
            response = await client.create_topics(
                [NewTopic(name, wanted[name], replication) for name in missing],
                timeout_ms=30000,
            )
            for entry in response.topic_errors:
                topic, code = entry[0], entry[1]
                message = entry[2] if len(entry) > 2 else None
                if code == 0:
                    _log(f"created {topic} ({wanted[topic]} partitions)")
                elif code == TOPIC_ALREADY_EXISTS:
                    _log(f"{topic} already exists")
                else:
                    failures += 1
                    _log(f"failed to create {topic}: error {code} {message or ''}".rstrip())
        present = [name for name in wanted if name in existing]
        if present:
            for meta in await client.describe_topics(present):
                name = meta["topic"]
                count = len(meta.get("partitions") or [])
                if count != wanted[name]:
                    _log(f"warning: {name} exists with {count} partitions (wanted {wanted[name]})")
                else:
                    _log(f"{name} exists ({count} partitions)")
        return 1 if failures else 0
    finally:
        await client.close()


async def cmd_list(bootstrap: str) -> int:
    client = await _admin(bootstrap, 30)
    try:
        topics = sorted(t for t in await client.list_topics() if not t.startswith("__"))
        metas = await client.describe_topics(topics) if topics else []
        for meta in sorted(metas, key=lambda m: str(m["topic"])):
            print(f"{meta['topic']}\t{len(meta.get('partitions') or [])}")
        return 0
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="wait until the broker answers metadata requests")
    wait.add_argument("--timeout", type=float, default=120.0)
    create = sub.add_parser("create-topics", help="create missing topics")
    create.add_argument("topics", nargs="+", metavar="NAME:PARTITIONS")
    create.add_argument("--replication-factor", type=int, default=1)
    sub.add_parser("list", help="list topics with their partition counts")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.CRITICAL)  # aiokafka is chatty while the broker boots
    if args.command == "wait":
        return asyncio.run(cmd_wait(args.bootstrap, args.timeout))
    if args.command == "create-topics":
        return asyncio.run(cmd_create_topics(args.bootstrap, args.topics, args.replication_factor))
    return asyncio.run(cmd_list(args.bootstrap))


if __name__ == "__main__":
    sys.exit(main())
