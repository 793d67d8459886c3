"""Prometheus metrics of the notifier (default registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS = Counter(
    "notifier_notifications_total",
    "Notification outcomes recorded, by channel and status.",
    ["channel", "status"],
)
DELIVERY_SECONDS = Histogram(
    "notifier_delivery_seconds",
    "Time to deliver one message on one channel, retries included.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ACTIONS_CONSUMED = Counter("notifier_actions_consumed_total", "Action records read from the actions topic.")
INVALID_ACTIONS = Counter(
    "notifier_invalid_actions_total", "Action records skipped because they are not valid actions."
)
OUTBOX_BACKLOG = Gauge("notifier_outbox_backlog", "Notification outcomes not yet published to Kafka.")
FAILED_ACTIONS = Counter(
    "notifier_failed_actions_total",
    "Valid action records skipped because handling them failed for a reason other than an outage.",
)
STALLED_PARTITIONS = Gauge(
    "notifier_stalled_partitions", "Assigned action partitions with records waiting and no commit for STALL_AFTER_S"
)
