"""indexes for the operator dashboard and the auditor pages

The dashboard and the auditor pages read by time and by network with 100,000 requests in the
table: completions of the last 30 days, receipts issued per day, and opt-outs that revoke access
at one network. Each of these reads is an index range scan with these, not a table scan; the
completions' index also holds the two times a completion is measured against, so the 30-day
timings are read from the index alone.

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-25 23:00:00.000000
"""
from alembic import op


revision = '0007'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('optout_requests', schema=None) as batch_op:
        batch_op.create_index('ix_optout_requests_completed_at', ['completed_at', 'requested_at', 'deadline'],
                              unique=False)
    with op.batch_alter_table('erasure_steps', schema=None) as batch_op:
        batch_op.create_index('ix_erasure_steps_target_kind', ['target', 'kind', 'request_id'], unique=False)
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index('ix_receipts_issued_at', ['issued_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_receipts_issued_at')
    with op.batch_alter_table('erasure_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_erasure_steps_target_kind')
    with op.batch_alter_table('optout_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_optout_requests_completed_at')
