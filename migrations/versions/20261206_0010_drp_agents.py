"""authorized agents of the Data Rights Protocol 1.0

The agents an operator registers (with their Ed25519 verify keys), the bearer tokens of their pairwise key
setups (hashes only), their requests, the signed messages already accepted (kept until they expire, so a
replay is refused) and the status callbacks waiting to be sent.

Revision ID: 0010_drp_agents
Revises: 0009
Create Date: 2026-12-06 07:34:19.854590
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0010_drp_agents'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('drp_agents',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('verify_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drp_agents'))
    )
    op.create_table('drp_seen_messages',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_drp_seen_messages'))
    )
    with op.batch_alter_table('drp_seen_messages', schema=None) as batch_op:
        batch_op.create_index('ix_drp_seen_messages_expires_at', ['expires_at'], unique=False)

    op.create_table('drp_agent_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['drp_agents.id'], name=op.f('fk_drp_agent_tokens_agent_id_drp_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_drp_agent_tokens'))
    )
    with op.batch_alter_table('drp_agent_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drp_agent_tokens_agent_id'), ['agent_id'], unique=False)

    op.create_table('drp_requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('agent_request_id', sa.String(length=255), nullable=True),
    sa.Column('exercise', sa.String(length=16), nullable=False),
    sa.Column('regime', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('processing_details', sa.Text(), nullable=True),
    sa.Column('status_callback', sa.Text(), nullable=True),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expected_by', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('optout_request_id', sa.String(length=36), nullable=True),
    sa.Column('claims_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('verify_until', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('results_expires_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('results_used_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("exercise IN ('sale:opt-out', 'sale:opt-in', 'deletion', 'access')", name=op.f('ck_drp_requests_exercise')),
    sa.CheckConstraint("reason IS NULL OR reason IN ('need_user_verification', 'suspected_fraud', 'insuf_verification', 'no_match', 'claim_not_covered', 'outside_jurisdiction', 'too_many_requests', 'other')", name=op.f('ck_drp_requests_reason')),
    sa.CheckConstraint("status IN ('open', 'in_progress', 'fulfilled', 'revoked', 'denied', 'expired')", name=op.f('ck_drp_requests_status')),
    sa.ForeignKeyConstraint(['agent_id'], ['drp_agents.id'], name=op.f('fk_drp_requests_agent_id_drp_agents'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['optout_request_id'], ['optout_requests.id'], name=op.f('fk_drp_requests_optout_request_id_optout_requests'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drp_requests'))
    )
    with op.batch_alter_table('drp_requests', schema=None) as batch_op:
        batch_op.create_index('ix_drp_requests_agent_received', ['agent_id', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_drp_requests_optout_request_id'), ['optout_request_id'], unique=False)
        batch_op.create_index('ix_drp_requests_status', ['status'], unique=False)

    op.create_table('drp_callbacks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('pending', 'sent', 'superseded', 'failed')", name=op.f('ck_drp_callbacks_state')),
    sa.ForeignKeyConstraint(['request_id'], ['drp_requests.id'], name=op.f('fk_drp_callbacks_request_id_drp_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drp_callbacks'))
    )
    with op.batch_alter_table('drp_callbacks', schema=None) as batch_op:
        batch_op.create_index('ix_drp_callbacks_due', ['state', 'not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_drp_callbacks_request_id'), ['request_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('drp_callbacks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drp_callbacks_request_id'))
        batch_op.drop_index('ix_drp_callbacks_due')

    op.drop_table('drp_callbacks')
    with op.batch_alter_table('drp_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_drp_requests_status')
        batch_op.drop_index(batch_op.f('ix_drp_requests_optout_request_id'))
        batch_op.drop_index('ix_drp_requests_agent_received')

    op.drop_table('drp_requests')
    with op.batch_alter_table('drp_agent_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drp_agent_tokens_agent_id'))

    op.drop_table('drp_agent_tokens')
    with op.batch_alter_table('drp_seen_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_drp_seen_messages_expires_at')

    op.drop_table('drp_seen_messages')
    op.drop_table('drp_agents')
