"""The signing keys a process holds: unsealed once, and replaced when another process rotates them."""
from __future__ import annotations

import subprocess
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import event

from app.db import utcnow, writing
from app.security import Vault
from app.settings import ROOT
from erasure.receipts import keys
from tests.conftest import TOKEN_KEY
from tests.erasure.engine.helpers_processes import worker_environ


class CountingVault(Vault):
    """The app's vault keys, counting how often a sealed value is opened."""

    def __init__(self) -> None:
        super().__init__([TOKEN_KEY])
        self.opened = 0

    def open(self, sealed):
        self.opened += 1
        return super().open(sealed)


def test_a_process_unseals_each_key_once_and_picks_up_a_rotation_made_by_another(app, sessions, test_environ,
                                                                                 database_url):
    vault = CountingVault()
    with sessions() as db, writing(db):
        made, _private = keys.current(db, vault, "receipt", utcnow())
    for _ in range(20):  # as twenty receipts would ask
        with sessions() as db:
            assert keys.current(db, vault, "receipt", utcnow())[0].kid == made.kid
    assert vault.opened == 0  # the key this process made is held as made

    second = CountingVault()  # another process's first look: the key is unsealed once, then held
    for _ in range(20):
        with sessions() as db:
            assert keys.current(db, second, "receipt", utcnow())[0].kid == made.kid
    assert second.opened == 1

    rotated = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "keys", "rotate"], cwd=ROOT,
                             env=worker_environ(test_environ, database_url), capture_output=True, text=True,
                             timeout=120)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split()[-1]
    assert new_kid != made.kid
    time.sleep(keys.RECHECK)  # another process's rotation is seen within RECHECK
    with sessions() as db:
        row, private = keys.current(db, second, "receipt", utcnow())
    assert row.kid == new_kid and second.opened == 2
    Ed25519PublicKey.from_public_bytes(row.public_key).verify(private.sign(b"a receipt"), b"a receipt")
    kid, _private = keys.for_service_calls(sessions, second)
    assert kid == new_kid and second.opened == 2


def test_a_process_reads_the_current_kid_at_most_once_a_second_and_its_own_rotation_at_once(app, sessions, vault):
    with sessions() as db, writing(db):
        made, _private = keys.current(db, vault, "receipt", utcnow())
    time.sleep(keys.RECHECK)
    reads: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if "signing_keys" in statement:
            reads.append(statement)

    engine = app.extensions["ownstory_db"]["engine"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(50):  # as fifty receipts signed within a second would ask
            with sessions() as db:
                assert keys.current(db, vault, "receipt", utcnow())[0].kid == made.kid
        assert len(reads) == 1
        with sessions() as db, writing(db):
            new = keys.rotate(db, vault, utcnow()).kid
        with sessions() as db:
            assert keys.current(db, vault, "receipt", utcnow())[0].kid == new  # at once, not a second later
    finally:
        event.remove(engine, "before_cursor_execute", count)
