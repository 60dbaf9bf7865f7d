"""retention sweeps, and the Global Privacy Control signals on record

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-25 22:20:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0006'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retention_sweeps',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_expires_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('entries', sa.JSON(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.CheckConstraint("status IN ('running', 'done', 'partial', 'failed', 'abandoned')",
                       name=op.f('ck_retention_sweeps_status')),
    sa.CheckConstraint('rows >= 0', name=op.f('ck_retention_sweeps_rows_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_sweeps'))
    )
    with op.batch_alter_table('retention_sweeps', schema=None) as batch_op:
        batch_op.create_index('ix_retention_sweeps_started_at', ['started_at'], unique=False)
        # At most one running sweep, however many workers try to start one.
        batch_op.create_index('uq_retention_sweeps_one_running', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'running'"),
                              postgresql_where=sa.text("status = 'running'"))

    op.create_table('gpc_signals',
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('since', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subject_id'], ['users.id'], name=op.f('fk_gpc_signals_subject_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subject_id', name=op.f('pk_gpc_signals'))
    )


def downgrade() -> None:
    op.drop_table('gpc_signals')
    with op.batch_alter_table('retention_sweeps', schema=None) as batch_op:
        batch_op.drop_index('uq_retention_sweeps_one_running', sqlite_where=sa.text("status = 'running'"),
                            postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_index('ix_retention_sweeps_started_at')
    op.drop_table('retention_sweeps')
