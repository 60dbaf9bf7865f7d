"""a session version on every account

Signing out, and leaving, raise it; a session cookie carries the value it was issued with, and a
cookie whose value is behind the account's opens nothing, so a copy taken before signing out is
worthless. Existing accounts start at 0, and so do the cookies already out there (they carry none):
those stop working once, at this upgrade, and their people sign in again.

Revision ID: 0009_session_version
Revises: 0001
Create Date: 2026-11-27 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_session_version'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
