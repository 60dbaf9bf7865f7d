"""the receipt pool and the log sequencer's lease row

Receipts are signed into a pool; one sequencer at a time (elected by the lease on log_sequencer's one
row) appends the pool as leaves and signs one checkpoint per batch.

Revision ID: 0010_h17r_receipt_pool
Revises: 0009
Create Date: 2026-12-06 08:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0010_h17r_receipt_pool'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('receipt_pool',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('receipt_id', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.Column('issued_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['kid'], ['signing_keys.kid'], name=op.f('fk_receipt_pool_kid_signing_keys'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['request_id'], ['optout_requests.id'], name=op.f('fk_receipt_pool_request_id_optout_requests'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_receipt_pool')),
    sa.UniqueConstraint('receipt_id', name=op.f('uq_receipt_pool_receipt_id')),
    sa.UniqueConstraint('request_id', name=op.f('uq_receipt_pool_request_id'))
    )
    sequencer = op.create_table('log_sequencer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('held_by', sa.String(length=100), nullable=True),
    sa.Column('held_until', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_log_sequencer'))
    )
    op.bulk_insert(sequencer, [{'id': 1, 'held_by': None, 'held_until': None}])


def downgrade() -> None:
    op.drop_table('log_sequencer')
    op.drop_table('receipt_pool')
