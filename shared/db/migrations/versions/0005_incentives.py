"""incentives: coupon wallet, unredeemed codes, decisions, budget spend, playbook versions

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2)
JSON = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("action_id", sa.Text(), nullable=False),
        sa.Column("value", MONEY, nullable=False),
        sa.Column("min_spend", MONEY, nullable=True),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("redeemed_at", TS, nullable=True),
        sa.Column("playbook_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reminded_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("shop_id", "code"),
    )
    op.create_index("ix_coupons_open", "coupons", ["expires_at"], postgresql_where=sa.text("status = 'issued'"))
    op.create_index("ix_coupons_member", "coupons", ["shop_id", "member_id", sa.text("issued_at DESC"), "code"])
    op.create_table(
        "unredeemed_codes",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "code", "order_id"),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.Text(), nullable=False),
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("wave", sa.Integer(), nullable=True),
        sa.Column("strategy", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("action_id", sa.Text(), nullable=True),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("value", MONEY, nullable=False, server_default="0"),
        sa.Column("points", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("playbook_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("detail", JSON, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("decided_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "member_id", "decision_id"),
    )
    op.create_index("ix_decisions_rule", "decisions", ["shop_id", "rule", "at"])
    op.create_table(
        "budget_spend",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("spent", MONEY, nullable=False, server_default="0"),
        sa.Column("issued", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("shop_id", "scope", "period_start"),
    )
    op.create_table(
        "playbook_versions",
        sa.Column("seq", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("overrides", JSON, nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "version"),
        sa.UniqueConstraint("seq", name="uq_playbook_versions_seq"),
    )


def downgrade() -> None:
    op.drop_table("playbook_versions")
    op.drop_table("budget_spend")
    op.drop_index("ix_decisions_rule", table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("unredeemed_codes")
    op.drop_index("ix_coupons_open", table_name="coupons")
    op.drop_index("ix_coupons_member", table_name="coupons")
    op.drop_table("coupons")
