"""Prometheus metrics of the engagement service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter(
    "engagement_records_consumed_total", "Input records consumed, by topic and event type", ["topic", "type"]
)
DLQ_RECORDS = Counter("engagement_dlq_records_total", "Input records sent to the dead-letter topic", ["reason"])
DLQ_STORED = Counter(
    "engagement_dlq_stored_total", "Dead-letter records too large for the broker, kept in PostgreSQL and referenced"
)
QUARANTINES = Counter("engagement_quarantines_total", "Members quarantined because their state could not be processed")
QUARANTINED_MEMBERS = Gauge("engagement_quarantined_members", "Members in quarantine now (GET /v1/admin/quarantine)")
STALLED_PARTITIONS = Gauge(
    "engagement_stalled_partitions", "Assigned input partitions with records waiting and no commit for STALL_AFTER_S"
)
DUPLICATE_EVENTS = Counter("engagement_duplicate_events_total", "Events skipped because already processed")
PARKED_EVENTS = Counter("engagement_parked_events_total", "Events parked until their order arrives")
BATCH_SIZE = Histogram(
    "engagement_batch_size", "Records per processed batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000)
)
BATCH_SECONDS = Histogram(
    "engagement_batch_seconds",
    "Time to process and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_TO_ACTION_SECONDS = Histogram(
    "engagement_event_to_action_seconds",
    "From the triggering event's business time to the action's publication on Kafka",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
OUTBOX_BACKLOG = Gauge("engagement_outbox_backlog", "Actions written but not yet published")
PARKED_BACKLOG = Gauge("engagement_parked_backlog", "Events waiting for their order to arrive")
ACTIONS = Counter("engagement_actions_total", "Actions decided, by rule", ["rule"])
SCHEDULER_RUNS = Counter("engagement_scheduler_runs_total", "Background scheduler runs, by outcome", ["outcome"])
SCHEDULER_RUN_SECONDS = Histogram(
    "engagement_scheduler_run_seconds",
    "Time of one background scheduler run",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
SCHEDULER_MEMBERS = Counter("engagement_scheduler_members_total", "Members whose due items the scheduler handled")
SCHEDULER_FAILED_MEMBERS = Counter(
    "engagement_scheduler_failed_members_total", "Members whose due items failed and were postponed"
)
SCHEDULER_LATE_SKIPPED = Counter(
    "engagement_scheduler_late_skipped_total", "Scheduled messages not sent because their due item was handled too late"
)
INCENTIVE_DECISIONS = Counter(
    "engagement_incentive_decisions_total",
    "Incentive decisions by outcome (emitted, holdout, budget_exhausted, late_skipped)",
    ["outcome"],
)
COUPONS_REDEEMED = Counter("engagement_coupons_redeemed_total", "Wallet coupons redeemed by a paid order")
COUPONS_SHARED = Counter(
    "engagement_coupons_shared_total", "Paid orders that named a code of another member's wallet (not redeemed)"
)
COUPONS_EXPIRED = Counter("engagement_coupons_expired_total", "Wallet coupons the scheduler expired unredeemed")
CAMPAIGN_WAVES = Counter(
    "engagement_campaign_waves_total", "Campaign waves by what happened to them (started, done, cancelled)", ["event"]
)
CAMPAIGN_WAVE_MEMBERS = Counter(
    "engagement_campaign_wave_members_total", "Members of campaign waves decided (their actions: rule campaign)"
)
