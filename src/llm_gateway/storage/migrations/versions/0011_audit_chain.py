"""Audit: a hash chain per tenant (seq, chain_prev, chain_hash), its heads, and prunes.

Rows written before this revision are chained here, per tenant in id order, so
that ``llm-gateway audit verify`` covers the whole table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger()))
        batch.add_column(sa.Column("chain_prev", sa.String(64)))
        batch.add_column(sa.Column("chain_hash", sa.String(64)))
        batch.create_index("ix_audit_logs_tenant_seq", ["tenant", "seq"])
    op.create_table(
        "audit_chain_heads",
        sa.Column("tenant", sa.String(255), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_prunes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger()),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("last_request_id", sa.String(64)),
        sa.Column("request_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_prunes_tenant", "audit_prunes", ["tenant"])
    _chain_existing_rows()


def _chain_existing_rows() -> None:
    from llm_gateway.audit.chain import Head, link

    bind = op.get_bind()
    table = sa.Table("audit_logs", sa.MetaData(), autoload_with=bind)  # as it is at 0011
    heads: dict[str, Head] = {}
    last = 0
    while True:
        page = bind.execute(
            sa.select(table).where(table.c.id > last).order_by(table.c.id).limit(1000)
        ).mappings().all()  # fmt: skip
        if not page:
            break
        rows: list[dict[str, Any]] = [dict(r) for r in page]
        heads |= link(rows, heads)
        for row in rows:
            bind.execute(
                table.update().where(table.c.id == row["id"]).values(
                    seq=row["seq"], chain_prev=row["chain_prev"], chain_hash=row["chain_hash"]
                )
            )  # fmt: skip
        last = rows[-1]["id"]
    heads_table = sa.table(
        "audit_chain_heads", sa.column("tenant"), sa.column("seq"), sa.column("hash")
    )
    for tenant, head in heads.items():
        bind.execute(heads_table.insert().values(tenant=tenant, seq=head.seq, hash=head.hash))


def downgrade() -> None:
    op.drop_index("ix_audit_prunes_tenant", "audit_prunes")
    op.drop_table("audit_prunes")
    op.drop_table("audit_chain_heads")
    with op.batch_alter_table("audit_logs") as batch:
        batch.drop_index("ix_audit_logs_tenant_seq")
        batch.drop_column("chain_hash")
        batch.drop_column("chain_prev")
        batch.drop_column("seq")
