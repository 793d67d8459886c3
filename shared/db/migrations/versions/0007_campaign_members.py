"""campaign members and sends: each member's first reached wave and group, each wave's sends per strategy

A wave's targets are deleted as they are decided (no ``done`` flag to update); a member's first
wave and group are kept in ``campaign_members`` and each batch's sends are added up in
``campaign_sends``, so the campaign report reads neither the campaign's decisions nor its targets.
Nothing reads a campaign's decisions by campaign any more, so their index goes, and the
decisions' rule index leaves them out: a wave writes one decision per member.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    op.create_table(
        "campaign_members",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("grp", sa.Text(), nullable=False),
        sa.Column("first_wave", sa.Integer(), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "campaign_id", "member_id"),
    )
    op.create_table(
        "campaign_sends",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("points_value", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "campaign_id", "wave", "strategy"),
    )
    # Campaigns decided before this revision: their members and sends, from their decisions.
    op.execute(
        "INSERT INTO campaign_members (shop_id, campaign_id, member_id, grp, first_wave, first_at) "
        "SELECT DISTINCT ON (shop_id, campaign_id, member_id) shop_id, campaign_id, member_id, "
        "coalesce(strategy, 'holdout'), wave, at FROM decisions "
        "WHERE campaign_id IS NOT NULL AND outcome IN ('emitted', 'holdout') "
        "ORDER BY shop_id, campaign_id, member_id, wave"
    )
    op.execute(
        "INSERT INTO campaign_sends (shop_id, campaign_id, wave, strategy, members, points_value) "
        "SELECT shop_id, campaign_id, wave, strategy, count(*), coalesce(sum(value) FILTER (WHERE kind = 'points'), 0) "
        "FROM decisions WHERE campaign_id IS NOT NULL AND outcome = 'emitted' GROUP BY 1, 2, 3, 4"
    )
    op.execute("DELETE FROM campaign_targets WHERE done")
    op.drop_index("ix_campaign_targets_open", table_name="campaign_targets")
    op.drop_column("campaign_targets", "done")
    op.drop_index("ix_decisions_campaign", table_name="decisions")
    op.drop_index("ix_decisions_rule", table_name="decisions")
    op.create_index(
        "ix_decisions_rule", "decisions", ["shop_id", "rule", "at"], postgresql_where=sa.text("campaign_id IS NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_rule", table_name="decisions")
    op.create_index("ix_decisions_rule", "decisions", ["shop_id", "rule", "at"])
    op.create_index(
        "ix_decisions_campaign",
        "decisions",
        ["shop_id", "campaign_id", "wave"],
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
    )
    op.add_column(
        "campaign_targets", sa.Column("done", sa.Boolean(), nullable=False, server_default=sa.text("false"))
    )
    op.create_index(
        "ix_campaign_targets_open",
        "campaign_targets",
        ["shop_id", "campaign_id", "wave", "member_id"],
        postgresql_where=sa.text("NOT done"),
    )
    op.drop_table("campaign_sends")
    op.drop_table("campaign_members")
