"""audience: profile attributes, order categories, member tags (GIN), manual tags, segments

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
TEXTS = postgresql.ARRAY(sa.Text())


def upgrade() -> None:
    for column in (
        sa.Column("gender", sa.Text(), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("province", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("store_id", sa.Text(), nullable=True),
        sa.Column("tags", TEXTS, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("tags_until", TS, nullable=True),
        sa.Column(
            "external_tags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    ):
        op.add_column("members", column)
    op.create_index("ix_members_tags", "members", ["tags"], postgresql_using="gin")
    op.add_column("orders", sa.Column("created_categories", TEXTS, server_default=sa.text("'{}'"), nullable=False))
    op.add_column("orders", sa.Column("paid_categories", TEXTS, nullable=True))
    op.create_table(
        "member_manual_tags",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "member_id", "tag"),
    )
    op.create_index("ix_member_manual_tags_tag", "member_manual_tags", ["shop_id", "tag"])
    op.create_table(
        "segments",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("archived_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("shop_id", "segment_id"),
    )
    op.create_table(
        "segment_versions",
        sa.Column("shop_id", sa.Text(), nullable=False),
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "segment_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("segment_versions")
    op.drop_table("segments")
    op.drop_index("ix_member_manual_tags_tag", table_name="member_manual_tags")
    op.drop_table("member_manual_tags")
    op.drop_column("orders", "paid_categories")
    op.drop_column("orders", "created_categories")
    op.drop_index("ix_members_tags", table_name="members")
    for name in ("external_tags", "tags_until", "tags", "store_id", "city", "province", "birth_year", "gender"):
        op.drop_column("members", name)
