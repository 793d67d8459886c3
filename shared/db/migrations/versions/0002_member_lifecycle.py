"""member lifecycle: schedule, stages, tier retention, points ledger, score, RFM

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON_OBJECT = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.drop_column("members", "tier_qualified_at")
    for column in (
        sa.Column("repurchase_rewarded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("profile_at", postgresql.JSONB(astext_type=sa.Text()), server_default=JSON_OBJECT, nullable=False),
        sa.Column("stage", sa.Text(), nullable=True),
        sa.Column("stage_since", TS, nullable=True),
        sa.Column("win_backs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tier_reviewed_at", TS, nullable=True),
        sa.Column("tier_lowered_at", TS, nullable=True),
        sa.Column("qualifying_net_spend", sa.Numeric(14, 2), server_default="0", nullable=False),
        sa.Column("qualifying_orders", sa.Integer(), server_default="0", nullable=False),
        sa.Column("points_balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("points_next_expiry_at", TS, nullable=True),
        sa.Column("points_expiries", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("score", sa.Integer(), server_default="0", nullable=False),
        sa.Column("score_band", sa.Text(), nullable=True),
        sa.Column("score_parts", postgresql.JSONB(astext_type=sa.Text()), server_default=JSON_OBJECT, nullable=False),
        sa.Column("schedule_marks", postgresql.JSONB(astext_type=sa.Text()), server_default=JSON_OBJECT, nullable=False),
        sa.Column("scheduled_until", TS, nullable=True),
        sa.Column("next_due_at", TS, nullable=True),
    ):
        op.add_column("members", column)
    op.create_index(
        "ix_members_next_due", "members", ["next_due_at"], postgresql_where=sa.text("next_due_at IS NOT NULL")
    )

    # Reviews become a map review id -> facts (time, rating, text length, photos, appended).
    op.add_column(
        "orders", sa.Column("review_facts", postgresql.JSONB(astext_type=sa.Text()), server_default=JSON_OBJECT)
    )
    op.execute(
        "UPDATE orders SET review_facts = (SELECT coalesce(jsonb_object_agg(r, '{\"appended\": []}'::jsonb), '{}') "
        "FROM unnest(reviews) AS r) WHERE cardinality(reviews) > 0"
    )
    op.drop_column("orders", "reviews")
    op.alter_column("orders", "review_facts", new_column_name="reviews", nullable=False)
    for column in (
        sa.Column("shipments", postgresql.JSONB(astext_type=sa.Text()), server_default=JSON_OBJECT, nullable=False),
        sa.Column("care_done", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("points_earned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("points_reversed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("review_rewarded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    ):
        op.add_column("orders", column)

    op.create_table(
        "points_ledger",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("entry_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("shortfall", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), server_default=JSON_OBJECT, nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "member_id", "entry_id"),
    )
    op.create_index(
        "ix_points_ledger_member", "points_ledger", ["shop_id", "member_id", sa.literal_column("seq DESC")]
    )
    op.create_table(
        "rfm_edges",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("as_of", TS, nullable=False),
        sa.Column("buyers", sa.Integer(), nullable=False),
        sa.Column("recency_days", postgresql.ARRAY(sa.Float()), nullable=False),
        sa.Column("frequency", postgresql.ARRAY(sa.Float()), nullable=False),
        sa.Column("monetary", postgresql.ARRAY(sa.Float()), nullable=False),
        sa.Column("computed_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("shop_id"),
    )


def downgrade() -> None:
    op.drop_table("rfm_edges")
    op.drop_index("ix_points_ledger_member", table_name="points_ledger")
    op.drop_table("points_ledger")
    for name in ("review_rewarded", "points_reversed", "points_earned", "care_done", "shipments"):
        op.drop_column("orders", name)
    op.add_column(
        "orders", sa.Column("review_ids", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False)
    )
    op.execute("UPDATE orders SET review_ids = ARRAY(SELECT jsonb_object_keys(reviews))")
    op.drop_column("orders", "reviews")
    op.alter_column("orders", "review_ids", new_column_name="reviews")
    op.drop_index("ix_members_next_due", table_name="members")
    for name in (
        "next_due_at",
        "scheduled_until",
        "schedule_marks",
        "score_parts",
        "score_band",
        "score",
        "points_expiries",
        "points_next_expiry_at",
        "points_balance",
        "qualifying_orders",
        "qualifying_net_spend",
        "tier_lowered_at",
        "tier_reviewed_at",
        "win_backs",
        "stage_since",
        "stage",
        "repurchase_rewarded",
        "profile_at",
    ):
        op.drop_column("members", name)
    op.add_column("members", sa.Column("tier_qualified_at", TS, nullable=True))
