"""forget: one-time email links that prove control of an address

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-25 22:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0005'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('email_proofs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('address_box', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('expires_at > created_at', name=op.f('ck_email_proofs_expires_after_creation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_proofs')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_email_proofs_token_hash'))
    )
    with op.batch_alter_table('email_proofs', schema=None) as batch_op:
        batch_op.create_index('ix_email_proofs_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('email_proofs', schema=None) as batch_op:
        batch_op.drop_index('ix_email_proofs_expires_at')

    op.drop_table('email_proofs')
