"""The directory's budgets: a team's or a tenant's requests per minute, tokens and dollars a
month, enforced as that scope's limits (over rate_limits.yaml's entry); null: not set.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TABLES = ("teams", "tenants")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("requests_per_minute", sa.Integer()))
            batch.add_column(sa.Column("tokens_per_month", sa.BigInteger()))
            batch.add_column(sa.Column("cost_per_month_usd", sa.Float()))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("cost_per_month_usd")
            batch.drop_column("tokens_per_month")
            batch.drop_column("requests_per_minute")
