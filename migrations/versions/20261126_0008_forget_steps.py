"""a forget step kind for Ownstory's own records

Deleting Ownstory's own records of a person (grants, consents, the account) was a purge step aimed at
the target "ownstory". It is a step kind of its own now, "forget": the kind column's check constraint
allows it, and the steps already laid are moved to it (their target stays "ownstory"). The downgrade
moves them back before the constraint narrows again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

KINDS_BEFORE = "kind IN ('revoke', 'purge', 'verify', 'receipt', 'notify')"
KINDS_AFTER = "kind IN ('revoke', 'purge', 'forget', 'verify', 'receipt', 'notify')"
TO_FORGET = "UPDATE erasure_steps SET kind = 'forget' WHERE kind = 'purge' AND target = 'ownstory'"
TO_PURGE = "UPDATE erasure_steps SET kind = 'purge' WHERE kind = 'forget'"


def _kinds(allowed: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one (and keeps its
    # indexes and the other named constraints); PostgreSQL drops and adds it in place.
    with op.batch_alter_table('erasure_steps', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_erasure_steps_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_erasure_steps_kind'), allowed)


def upgrade() -> None:
    _kinds(KINDS_AFTER)
    op.execute(sa.text(TO_FORGET))


def downgrade() -> None:
    op.execute(sa.text(TO_PURGE))
    _kinds(KINDS_BEFORE)
