"""A directory user's own budgets: requests per minute, tokens and dollars a month, enforced
on the user scope over their tier's limits; null: not set (the tier's apply).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("requests_per_minute", sa.Integer()))
        batch.add_column(sa.Column("tokens_per_month", sa.BigInteger()))
        batch.add_column(sa.Column("cost_per_month_usd", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("cost_per_month_usd")
        batch.drop_column("tokens_per_month")
        batch.drop_column("requests_per_minute")
