"""one open opt-out per person and scope; closed accounts are marked

A person has at most one open opt-out per scope: a partial unique index on (user_id, scope) over the
open requests holds it, so two presses of "Opt out now" cannot both make one. Duplicates made before
it are kept and run to the end (each revokes, purges and gets its receipt), but only the oldest of
each stays attached to the account: the newer ones are detached (user_id NULL), as the forget step
would leave them anyway. Their forget step then has nothing to do; the oldest one's forgets the person.

users.closed_at marks an account whose owner asked to leave everything: from then on it connects no
network. Accounts already closed that way get the time of that opt-out.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

OPEN = "status IN ('needs_attention', 'in_progress', 'received')"
ONE_OPEN_WHERE = f"user_id IS NOT NULL AND {OPEN}"
DETACH_NEWER_DUPLICATES = f"""
UPDATE optout_requests SET user_id = NULL
WHERE user_id IS NOT NULL AND {OPEN} AND EXISTS (
    SELECT 1 FROM optout_requests AS older
    WHERE older.user_id = optout_requests.user_id AND older.scope = optout_requests.scope
      AND older.{OPEN}
      AND (older.requested_at < optout_requests.requested_at
           OR (older.requested_at = optout_requests.requested_at AND older.id < optout_requests.id)))
"""
MARK_CLOSED = """
UPDATE users SET closed_at = (
    SELECT min(r.requested_at) FROM optout_requests AS r WHERE r.user_id = users.id AND r.scope = 'all')
WHERE closed_at IS NULL
  AND EXISTS (SELECT 1 FROM optout_requests AS r WHERE r.user_id = users.id AND r.scope = 'all')
"""


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', app.db.UTCDateTime(timezone=True), nullable=True))
    op.execute(sa.text(MARK_CLOSED))
    op.execute(sa.text(DETACH_NEWER_DUPLICATES))
    with op.batch_alter_table('optout_requests', schema=None) as batch_op:
        batch_op.create_index('uq_optout_requests_one_open', ['user_id', 'scope'], unique=True,
                              sqlite_where=sa.text(ONE_OPEN_WHERE), postgresql_where=sa.text(ONE_OPEN_WHERE))


def downgrade() -> None:
    # The detached duplicates stay detached: which account each belonged to is not kept.
    with op.batch_alter_table('optout_requests', schema=None) as batch_op:
        batch_op.drop_index('uq_optout_requests_one_open')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
