"""an index of the running steps' leases, for the claim's takeover of expired ones

Every claim looks for running steps whose lease ran out (their worker died). With only the index on
(status, not_before) it read every running step, and every older version of one that each claim and
lease renewal leaves in the index until vacuum: about half of a claim's time on a busy queue. A partial
index on lease_expires_at over the running steps makes it a range scan of the expired ones only.

Revision ID: 0011_expired_leases
Revises: 0010_h17r_receipt_pool
Create Date: 2026-12-06 21:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_expired_leases'
down_revision = '0010_h17r_receipt_pool'
branch_labels = None
depends_on = None

RUNNING_WHERE = "status = 'running'"


def upgrade() -> None:
    with op.batch_alter_table('erasure_steps', schema=None) as batch_op:
        batch_op.create_index('ix_erasure_steps_lease', ['lease_expires_at'], unique=False,
                              sqlite_where=sa.text(RUNNING_WHERE), postgresql_where=sa.text(RUNNING_WHERE))


def downgrade() -> None:
    with op.batch_alter_table('erasure_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_erasure_steps_lease')
