"""What `flask datamap check` must see in a platform's SQL store, whatever the database."""
from __future__ import annotations

from sqlalchemy import text

from app.db import make_engine
from demo.platform import seed_platform_store
from erasure.stores.kinds import Gaps
from erasure.stores.sql import SqlStore, TableEntry


def assert_a_changed_platform_is_seen(url: str) -> None:
    """The demo platform at `url`, a table added and one dropped since the map was written, and a map that names a
    column posts lacks and searches endorsements by a column without an index: the store names each. Names compare
    without case, as SQLite and MySQL compare them."""
    seed_platform_store(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE direct_messages (sender_id VARCHAR(40))"))
        conn.execute(text("DROP TABLE scores"))
    engine.dispose()
    entries = tuple(TableEntry(store="platform", category=f"{table}.{column}", identity="account", network="demo",
                               table=table, column=column)
                    for table, column in (("PROFILES", "Account_Id"), ("posts", "author_id"), ("posts", "writer_id"),
                                          ("endorsements", "giver_id"), ("endorsements", "topic"),
                                          ("scores", "handle")))
    store = SqlStore("platform", url, entries, holds_no_personal_data=("Mailing_List",))
    try:
        assert store.gaps() == Gaps(unmapped=["direct_messages"], missing=["scores"],
                                    missing_columns=["posts.writer_id"], unindexed=["endorsements.topic"])
    finally:
        store.dispose()
