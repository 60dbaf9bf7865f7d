"""What `flask datamap check` must see in a platform's SQL store, whatever the database."""
from __future__ import annotations

from sqlalchemy import text

from app.db import make_engine
from demo.platform import seed_platform_store
from erasure.stores.kinds import Gaps
from erasure.stores.sql import SqlStore, TableEntry


def assert_a_changed_platform_is_seen(url: str) -> None:
    """The demo platform at `url`, a table added and one dropped since the map was written: the store names both.
    Names compare without case, as SQLite and MySQL compare them."""
    seed_platform_store(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE direct_messages (sender_id VARCHAR(40))"))
        conn.execute(text("DROP TABLE scores"))
    engine.dispose()
    entries = tuple(TableEntry(store="platform", category=t, identity="account", network="demo", table=t,
                               column="account_id") for t in ("PROFILES", "posts", "endorsements", "scores"))
    store = SqlStore("platform", url, entries, holds_no_personal_data=("Mailing_List",))
    try:
        assert store.gaps() == Gaps(unmapped=["direct_messages"], missing=["scores"])
    finally:
        store.dispose()
