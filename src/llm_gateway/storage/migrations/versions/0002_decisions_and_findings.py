"""Audit: the policy's decision log and DLP findings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (
    ("policy_decision", sa.String(8)),
    ("policy_reasons", sa.Text()),
    ("policy_revision", sa.String(64)),
    ("policy_eval_us", sa.Float()),
    ("dlp_action", sa.String(16)),
    ("dlp_findings", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_))


def downgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
