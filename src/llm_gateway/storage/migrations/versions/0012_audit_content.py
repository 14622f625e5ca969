"""Audit: the redacted prompt and answer, stored when AUDIT_STORE_CONTENT=redacted.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch:
        batch.add_column(sa.Column("prompt_text", sa.Text))
        batch.add_column(sa.Column("response_text", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch:
        batch.drop_column("response_text")
        batch.drop_column("prompt_text")
