"""lean write indexes: the outbox keyed by (stream, seq), actions keyed by their id

Every action writes an ``actions`` row and an ``outbox`` row, each with an index more than it
needs: the outbox's ``seq`` key beside the relay's ``(stream, seq)`` index, and the actions'
``seq`` key beside the unique ``action_id``. Each table keeps the one its readers use, as its
primary key; ``seq`` stays as a column (the relay's and the member lists' order).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("outbox_pkey", "outbox", type_="primary")
    op.drop_index("ix_outbox_stream", table_name="outbox")
    op.create_primary_key("outbox_pkey", "outbox", ["stream", "seq"])
    op.drop_constraint("actions_pkey", "actions", type_="primary")
    op.drop_constraint("actions_action_id_key", "actions", type_="unique")
    op.create_primary_key("actions_pkey", "actions", ["action_id"])


def downgrade() -> None:
    op.drop_constraint("actions_pkey", "actions", type_="primary")
    op.create_primary_key("actions_pkey", "actions", ["seq"])
    op.create_unique_constraint("actions_action_id_key", "actions", ["action_id"])
    op.drop_constraint("outbox_pkey", "outbox", type_="primary")
    op.create_primary_key("outbox_pkey", "outbox", ["seq"])
    op.create_index("ix_outbox_stream", "outbox", ["stream", "seq"])
