"""Add notes.author (release 2.0.0): an "expand" step.

Nullable, with a server default: release 1.0.0, still live while this runs and until the switch,
keeps inserting notes without naming the column and reading them without it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("author", sa.Text, nullable=True,
                                     server_default="anonymous"))


def downgrade() -> None:
    with op.batch_alter_table("notes") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("author")
