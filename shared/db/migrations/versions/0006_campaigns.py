"""campaigns: campaigns, their waves, and each wave's targets

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("plan", JSON, nullable=False),
        sa.Column("segment_id", sa.Text(), nullable=True),
        sa.Column("segment_version", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("shop_id", "campaign_id"),
    )
    op.create_index("ix_campaigns_shop", "campaigns", ["shop_id", sa.text("created_at DESC"), "campaign_id"])
    op.create_table(
        "campaign_waves",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("members", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("ran_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("shop_id", "campaign_id", "wave"),
    )
    op.create_index(
        "ix_campaign_waves_due", "campaign_waves", ["at"], postgresql_where=sa.text("status IN ('pending', 'running')")
    )
    op.create_table(
        "campaign_targets",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.PrimaryKeyConstraint("shop_id", "campaign_id", "wave", "member_id"),
    )
    op.create_index(
        "ix_campaign_targets_open",
        "campaign_targets",
        ["shop_id", "campaign_id", "wave", "member_id"],
        postgresql_where=sa.text("NOT done"),
    )


    # The campaign report: a campaign's decisions, and its redeemed coupons (few), without reading the rules'.
    op.create_index(
        "ix_decisions_campaign",
        "decisions",
        ["shop_id", "campaign_id", "wave"],
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
    )
    op.create_index(
        "ix_coupons_campaign_redeemed",
        "coupons",
        ["shop_id", "campaign_id"],
        postgresql_where=sa.text("campaign_id IS NOT NULL AND status = 'redeemed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_coupons_campaign_redeemed", table_name="coupons")
    op.drop_index("ix_decisions_campaign", table_name="decisions")
    op.drop_index("ix_campaign_targets_open", table_name="campaign_targets")
    op.drop_table("campaign_targets")
    op.drop_index("ix_campaign_waves_due", table_name="campaign_waves")
    op.drop_table("campaign_waves")
    op.drop_index("ix_campaigns_shop", table_name="campaigns")
    op.drop_table("campaigns")
