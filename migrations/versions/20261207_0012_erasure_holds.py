"""the holds a network or a store's service asked for, where every worker reads them

A revocation or purge answered with a Retry-After of 10 s or more holds that network or service until then.
The worker that was told moves the steps due there; before this table, another worker learned of the hold only
by asking again and being told again.

Revision ID: 0012_erasure_holds
Revises: 0011_expired_leases
Create Date: 2026-12-07 11:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0012_erasure_holds'
down_revision = '0011_expired_leases'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasure_holds',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('until', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('revoke', 'purge', 'forget', 'verify', 'receipt', 'notify')",
                       name=op.f('ck_erasure_holds_kind')),
    sa.PrimaryKeyConstraint('kind', 'target', name=op.f('pk_erasure_holds'))
    )


def downgrade() -> None:
    op.drop_table('erasure_holds')
