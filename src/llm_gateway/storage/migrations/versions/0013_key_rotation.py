"""API keys: the key that replaced a rotated one (the old key works until its expiry), and
the models a key may name (a JSON list; none: whatever the policy allows).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("replaced_by", sa.String(32)))
        batch.add_column(sa.Column("allowed_models", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("allowed_models")
        batch.drop_column("replaced_by")
