"""Table definitions (SQLAlchemy Core). Changes go through an Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

MONEY = Numeric(14, 2)
TS = DateTime(timezone=True)

members = Table(
    "members",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("joined_at", TS),
    Column("joined_by_event", Boolean, nullable=False, server_default=text("false")),
    Column("tier", Text),
    Column("tier_since", TS),
    Column("net_spend", MONEY, nullable=False, server_default="0"),
    Column("paid_orders", Integer, nullable=False, server_default="0"),
    Column("first_order_at", TS),
    Column("last_order_at", TS),
    Column("birthday", Text),
    Column("timezone", Text),
    Column("channel", Text),
    Column("marketing_consent", Boolean, nullable=False, server_default=text("true")),
    Column("consent_at", TS),
    Column("profile_at", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("first_purchase_rewarded", Boolean, nullable=False, server_default=text("false")),
    Column("rewarded_tiers", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("last_event_at", TS),
    Column("repurchase_rewarded", Boolean, nullable=False, server_default=text("false")),
    Column("stage", Text),
    Column("stage_since", TS),
    Column("win_backs", Integer, nullable=False, server_default="0"),
    Column("tier_reviewed_at", TS),
    Column("tier_lowered_at", TS),
    Column("qualifying_net_spend", MONEY, nullable=False, server_default="0"),
    Column("qualifying_orders", Integer, nullable=False, server_default="0"),
    Column("points_balance", BigInteger, nullable=False, server_default="0"),
    Column("points_next_expiry_at", TS),
    Column("points_expiries", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("score", Integer, nullable=False, server_default="0"),
    Column("score_band", Text),
    Column("score_parts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("schedule_marks", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("scheduled_until", TS),
    # The earliest time-based rule due for the member: the scheduler reads only what is due.
    Column("next_due_at", TS),
    Column("gender", Text),
    Column("birth_year", Integer),
    Column("province", Text),
    Column("city", Text),
    Column("store_id", Text),
    # Built-in and external tag ids, sorted; kept current by the event path and the scheduler.
    Column("tags", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("tags_until", TS),
    # The latest business-time change of each external tag: {"<id>": {"present": bool, "at": time}}.
    Column("external_tags", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", TS, nullable=False, server_default=text("now()")),
    Column("updated_at", TS, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("shop_id", "member_id"),
    Index("ix_members_next_due", "next_due_at", postgresql_where=text("next_due_at IS NOT NULL")),
    Index("ix_members_tags", "tags", postgresql_using="gin"),
)

orders = Table(
    "orders",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("amount", MONEY),
    Column("paid_amount", MONEY),
    Column("refunded_amount", MONEY, nullable=False, server_default="0"),
    Column("counted", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", TS),
    Column("paid_at", TS),
    Column("cancelled_at", TS),
    Column("completed_at", TS),
    Column("shipment_status", Text),
    Column("refunds", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("reviews", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("shipments", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("care_done", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("points_earned", BigInteger, nullable=False, server_default="0"),
    Column("points_reversed", BigInteger, nullable=False, server_default="0"),
    Column("review_rewarded", Boolean, nullable=False, server_default=text("false")),
    Column("created_categories", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("paid_categories", ARRAY(Text)),  # NULL: ``order.paid`` carried no items
    Column("updated_at", TS, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("shop_id", "order_id"),
    Index("ix_orders_member", "shop_id", "member_id"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("source", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("processed_at", TS, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("source", "event_id"),
)

pending_events = Table(
    "pending_events",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("event_time", TS, nullable=False),
    Column("event", JSONB, nullable=False),
    Column("parked_at", TS, nullable=False, server_default=text("now()")),
    UniqueConstraint("source", "event_id", name="uq_pending_events_event"),
    Index("ix_pending_events_order", "shop_id", "order_id"),
)

# The append-only points ledger; its lines always sum to members.points_balance.
points_ledger = Table(
    "points_ledger",
    metadata,
    Column("seq", BigInteger, Identity(), nullable=False),
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("entry_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("shortfall", BigInteger, nullable=False, server_default="0"),
    Column("at", TS, nullable=False),
    Column("expires_at", TS),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", TS, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("shop_id", "member_id", "entry_id"),
    Index("ix_points_ledger_member", "shop_id", "member_id", text("seq DESC")),
)

# Tags set by hand through the API (``manual.<name>``), each with an optional expiry.
member_manual_tags = Table(
    "member_manual_tags",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("tag", Text, nullable=False),
    Column("expires_at", TS),
    Column("created_at", TS, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("shop_id", "member_id", "tag"),
    Index("ix_member_manual_tags_tag", "shop_id", "tag"),
)

# Saved audience definitions: the segment's current version and name here, every version below.
segments = Table(
    "segments",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("segment_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("archived_at", TS),
    PrimaryKeyConstraint("shop_id", "segment_id"),
)

segment_versions = Table(
    "segment_versions",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("segment_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("definition", JSONB, nullable=False),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("shop_id", "segment_id", "version"),
)

# Per shop: the RFM quintile edges of its buyers, recomputed by the scheduler.
rfm_edges = Table(
    "rfm_edges",
    metadata,
    Column("shop_id", Text, primary_key=True),
    Column("as_of", TS, nullable=False),
    Column("buyers", Integer, nullable=False),
    Column("recency_days", ARRAY(Float), nullable=False),
    Column("frequency", ARRAY(Float), nullable=False),
    Column("monetary", ARRAY(Float), nullable=False),
    Column("computed_at", TS, nullable=False, server_default=text("now()")),
)

# Every action ever decided, for the API; new ones also get an outbox row.
coupons = Table(
    "coupons",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("campaign_id", Text),
    Column("action_id", Text, nullable=False),
    Column("value", MONEY, nullable=False),
    Column("min_spend", MONEY),
    Column("issued_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("status", Text, nullable=False),  # issued, redeemed, expired
    Column("order_id", Text),
    Column("redeemed_at", TS),
    Column("playbook_version", Integer, nullable=False, server_default="0"),
    Column("reminded_at", TS),  # when its expiry reminder fell due (sent, or handled too late to send)
    PrimaryKeyConstraint("shop_id", "code"),
    Index("ix_coupons_member", "shop_id", "member_id", text("issued_at DESC"), "code"),
    # The scheduler's pass over open coupons: expiries and reminders, in expiry order.
    Index("ix_coupons_open", "expires_at", postgresql_where=text("status = 'issued'")),
    Index(
        "ix_coupons_campaign_redeemed",
        "shop_id",
        "campaign_id",
        postgresql_where=text("campaign_id IS NOT NULL AND status = 'redeemed'"),
    ),
)

# Codes paid orders named that redeemed nothing of the payer's own wallet; those of another member's
# wallet are shared codes (counted by joining ``coupons``, whatever order the events arrived in).
unredeemed_codes = Table(
    "unredeemed_codes",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("at", TS, nullable=False),
    PrimaryKeyConstraint("shop_id", "code", "order_id"),
)

# Every incentive decision: emitted, holdout, budget_exhausted, late_skipped ...
decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", Text, nullable=False),
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("campaign_id", Text),
    Column("wave", Integer),  # a campaign's decision: its wave (from 1) and the strategy assigned (null: holdout)
    Column("strategy", Text),
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", TS, nullable=False),
    Column("action_id", Text),
    Column("order_id", Text),  # the order that triggered the decision, if one did
    Column("code", Text),  # the coupon given, when one was: the incentives report finds it by its key
    Column("kind", Text),
    Column("value", MONEY, nullable=False, server_default="0"),
    Column("points", Integer, nullable=False, server_default="0"),
    Column("playbook_version", Integer, nullable=False, server_default="0"),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("decided_at", TS, nullable=False),
    # A member's decisions are few: listed from the key's prefix and sorted, with no index of their own.
    PrimaryKeyConstraint("shop_id", "member_id", "decision_id"),
    Index("ix_decisions_rule", "shop_id", "rule", "at", postgresql_where=text("campaign_id IS NULL")),
)

# Value issued per budget scope (a rule, or campaign:<id>) and calendar period of business time.
budget_spend = Table(
    "budget_spend",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("spent", MONEY, nullable=False, server_default="0"),
    Column("issued", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("shop_id", "scope", "period_start"),
)

# Each shop's playbook overrides, one row per version; the newest is in force.
playbook_versions = Table(
    "playbook_versions",
    metadata,
    Column("seq", BigInteger, Identity(), nullable=False),
    Column("shop_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("overrides", JSONB, nullable=False),
    Column("created_at", TS, nullable=False, server_default=text("now()")),
    Column("created_by", Text, nullable=False),
    PrimaryKeyConstraint("shop_id", "version"),
    UniqueConstraint("seq", name="uq_playbook_versions_seq"),
)

# A campaign: its plan as created (the segment's definition copied in), and where it stands.
campaigns = Table(
    "campaigns",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False),  # scheduled, running, completed, cancelled
    Column("plan", JSONB, nullable=False),
    Column("segment_id", Text),
    Column("segment_version", Integer),
    Column("created_at", TS, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("cancelled_at", TS),
    PrimaryKeyConstraint("shop_id", "campaign_id"),
    Index("ix_campaigns_shop", "shop_id", text("created_at DESC"), "campaign_id"),
)

# Each wave of a campaign: due at ``at`` (business time), run once by the scheduler.
campaign_waves = Table(
    "campaign_waves",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("wave", Integer, nullable=False),
    Column("at", TS, nullable=False),
    Column("audience", Text, nullable=False),  # all, not_converted
    Column("status", Text, nullable=False, server_default="pending"),  # pending, running, done, cancelled
    Column("members", Integer, nullable=False, server_default="0"),  # distinct members who got an action
    Column("started_at", TS),
    Column("ran_at", TS),  # wall clock, when the wave's last member was handled
    PrimaryKeyConstraint("shop_id", "campaign_id", "wave"),
    Index("ix_campaign_waves_due", "at", postgresql_where=text("status IN ('pending', 'running')")),
)

# A running wave's audience, fixed when the wave starts: each member's row is deleted by the batch that decides it.
campaign_targets = Table(
    "campaign_targets",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("wave", Integer, nullable=False),
    Column("member_id", Text, nullable=False),
    PrimaryKeyConstraint("shop_id", "campaign_id", "wave", "member_id"),
)

# Every member a campaign reached (given its incentive or held out): its group and the first wave that did.
campaign_members = Table(
    "campaign_members",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("grp", Text, nullable=False),  # the strategy's code, or holdout
    Column("first_wave", Integer, nullable=False),
    Column("first_at", TS, nullable=False),
    PrimaryKeyConstraint("shop_id", "campaign_id", "member_id"),
)

# Actions sent per wave and strategy, added up by each batch in its transaction; with what their points cost.
campaign_sends = Table(
    "campaign_sends",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("campaign_id", Text, nullable=False),
    Column("wave", Integer, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("members", Integer, nullable=False),
    Column("points_value", MONEY, nullable=False),
    PrimaryKeyConstraint("shop_id", "campaign_id", "wave", "strategy"),
)

actions = Table(
    "actions",
    metadata,
    Column("seq", BigInteger, Identity(), nullable=False),  # the member list's tie-break, in writing order
    Column("action_id", Text, primary_key=True),
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("payload", JSONB, nullable=False),
    Index("ix_actions_member", "shop_id", "member_id", text("occurred_at DESC"), text("seq DESC")),
)

# One row per (action, channel): the notifier's idempotency key and delivery state.
deliveries = Table(
    "deliveries",
    metadata,
    Column("action_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("occurred_at", TS, nullable=False),
    Column("due_at", TS),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("action", JSONB, nullable=False),
    Column("created_at", TS, nullable=False, server_default=text("now()")),
    Column("updated_at", TS, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("action_id", "channel"),
    Index("ix_deliveries_due", "due_at", postgresql_where=text("status = 'deferred'")),
    Index(
        "ix_deliveries_incentive_window",
        "shop_id",
        "member_id",
        "occurred_at",
        postgresql_where=text("category = 'incentive'"),
    ),
)

# Notification outcomes: the log the API reads; new ones also get an outbox row.
notifications = Table(
    "notifications",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("notification_id", Text, nullable=False, unique=True),
    Column("action_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("at", TS, nullable=False),
    Column("payload", JSONB, nullable=False),
    Index("ix_notifications_member", "shop_id", "member_id", text("seq DESC")),
)

# The transactional outbox: messages written in the same transaction as the change that
# caused them, published by a relay and then deleted. ``stream`` names the logical output
# ("actions", "notifications"); each service maps it to its configured topic.
outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, Identity(), nullable=False),
    Column("stream", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("event_time", TS, nullable=False),
    Column("created_at", TS, nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("stream", "seq"),  # the relay's order: one index for every row written
)

# Members whose stored state the domain could not process: their events are dead-lettered
# (``member_quarantined``) instead of failing every batch, until an operator releases them.
quarantined_members = Table(
    "quarantined_members",
    metadata,
    Column("shop_id", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("events", Integer, nullable=False, server_default=text("0")),
    Column("quarantined_at", TS, nullable=False, server_default=text("now()")),
    Column("last_event_at", TS, nullable=True),
    PrimaryKeyConstraint("shop_id", "member_id", name="pk_quarantined_members"),
)

# Dead-letter records too large for the broker: the original record is kept here and the
# record on the dead-letter topic carries ``stored_as`` (``dead_letters/<id>``) and a prefix.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=True),
    Column("error", Text, nullable=False),
    Column("received_at", TS, nullable=False, server_default=text("now()")),
    UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_record"),
)
