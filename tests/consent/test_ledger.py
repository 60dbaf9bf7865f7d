"""The consent ledger: its hash chain, tampering found by verify, and racing writers."""
import datetime as dt
import hashlib
import threading

import pytest
from sqlalchemy import select, text

from consent import ledger
from consent.models import ConsentEvent, ConsentState

T0 = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)


def build_chain(session, subject="subject-a"):
    """seq 1 grant scoring, 2 withdraw scoring, 3 grant research, 4 grant scoring again."""
    steps = [("scoring", "grant"), ("scoring", "withdraw"), ("research", "grant"), ("scoring", "grant")]
    events = [ledger.append(session, subject, "demo", purpose, 1, action, "form", T0 + dt.timedelta(seconds=i))
              for i, (purpose, action) in enumerate(steps)]
    session.commit()
    return events


def sql(session, statement, **params):
    session.execute(text(statement), params)
    session.commit()
    session.expire_all()


def test_the_first_entry_hashes_the_canonical_fields_after_genesis(session):
    event = ledger.append(session, "s-1", "demo", "scoring", 1, "grant", "form", T0)
    session.commit()
    canonical = ('{"action":"grant","at":"2026-11-25T19:00:00.000000Z","method":"form","network":"demo",'
                 '"prev_hash":"' + "0" * 64 + '","purpose":"scoring","seq":1,"subject_id":"s-1","version":1}')
    assert event.seq == 1 and event.prev_hash == ledger.GENESIS
    assert event.hash == hashlib.sha256(b"0" * 64 + canonical.encode()).hexdigest()


def test_entries_chain_and_the_state_follows_the_last_one(session):
    events = build_chain(session)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    states = {s.purpose: s for s in session.scalars(select(ConsentState))}
    assert (states["scoring"].status, states["scoring"].event_id) == ("granted", events[3].id)
    assert (states["research"].status, states["research"].event_id) == ("granted", events[2].id)
    assert ledger.verify(session) == []


def test_a_time_in_another_zone_hashes_as_the_same_instant(session):
    event = ledger.append(session, "s-1", "demo", "scoring", 1, "grant", "form",
                          T0.astimezone(dt.timezone(dt.timedelta(hours=5))))
    session.commit()
    assert ledger.iso_utc(event.at) == "2026-11-25T19:00:00.000000Z"
    assert ledger.verify(session) == []


def test_a_naive_time_is_refused(session):
    with pytest.raises(ValueError, match="timezone"):
        ledger.append(session, "s-1", "demo", "scoring", 1, "grant", "form", dt.datetime(2026, 1, 1))


@pytest.mark.parametrize("column, value", [("purpose", "research"), ("action", "grant"), ("version", "7"),
                                           ("method", "api")])
def test_an_edited_entry_is_a_hash_mismatch(session, column, value):
    build_chain(session)
    sql(session, f"UPDATE consent_events SET {column} = :v WHERE subject_id = 'subject-a' AND seq = 2",
        v=int(value) if value.isdigit() else value)
    [found] = ledger.verify(session)
    assert (found.subject_id, found.seq) == ("subject-a", 2)
    assert "hash mismatch at seq 2" in found.problem


def test_an_edited_time_is_a_hash_mismatch(session):
    build_chain(session)
    session.execute(ConsentEvent.__table__.update()
                    .where(ConsentEvent.subject_id == "subject-a", ConsentEvent.seq == 3)
                    .values(at=T0 - dt.timedelta(days=1)))
    session.commit()
    [found] = ledger.verify(session)
    assert "hash mismatch at seq 3" in found.problem


def test_a_deleted_entry_is_a_gap(session):
    build_chain(session)
    sql(session, "DELETE FROM consent_events WHERE subject_id = 'subject-a' AND seq = 2")
    [found] = ledger.verify(session)
    assert found.problem.startswith("gap: seq jumps 1 -> 3")


def test_a_deleted_first_entry_is_a_gap(session):
    build_chain(session)
    sql(session, "DELETE FROM consent_events WHERE subject_id = 'subject-a' AND seq = 1")
    [found] = ledger.verify(session)
    assert "the chain starts at seq 2, not 1" in found.problem


def test_swapped_entries_break_the_link(session):
    build_chain(session)
    for old, new in ((2, 100), (3, 2), (100, 3)):
        sql(session, "UPDATE consent_events SET seq = :new WHERE subject_id = 'subject-a' AND seq = :old",
            old=old, new=new)
    [found] = ledger.verify(session)
    assert "broken link at seq 2" in found.problem


def test_a_forged_entry_with_a_made_up_hash_is_found(session):
    events = build_chain(session)
    sql(session, "INSERT INTO consent_events (subject_id, seq, network, purpose, version, action, method, at, "
                 "prev_hash, hash) VALUES ('subject-a', 5, 'demo', 'scoring', 1, 'withdraw', 'form', :at, :prev, :h)",
        at=T0.replace(tzinfo=None), prev=events[-1].hash, h="f" * 64)
    [found] = ledger.verify(session)
    assert "hash mismatch at seq 5" in found.problem


def test_a_forged_entry_with_a_recomputed_hash_disagrees_with_the_state(session):
    events = build_chain(session)
    forged = ConsentEvent(subject_id="subject-a", seq=5, network="demo", purpose="scoring", version=1,
                          action="withdraw", method="form", at=T0, prev_hash=events[-1].hash)
    forged.hash = ledger.event_hash(forged)
    session.add(forged)
    session.commit()
    [found] = ledger.verify(session)
    assert found.seq is None
    assert "demo/scoring says granted v1 but the ledger's last entry (seq 5) says withdrawn v1" in found.problem


def test_an_edited_state_disagrees_with_the_ledger(session):
    build_chain(session)
    sql(session, "UPDATE consent_state SET status = 'withdrawn' WHERE purpose = 'research'")
    [found] = ledger.verify(session)
    assert "demo/research says withdrawn v1" in found.problem


def test_a_deleted_state_is_found(session):
    build_chain(session)
    sql(session, "DELETE FROM consent_state WHERE purpose = 'research'")
    [found] = ledger.verify(session)
    assert "consent state for demo/research is missing" in found.problem


def test_only_the_first_break_per_person_is_named_and_others_stay_intact(session):
    build_chain(session, "subject-a")
    build_chain(session, "subject-b")
    build_chain(session, "subject-c")
    sql(session, "UPDATE consent_events SET purpose = 'x' WHERE subject_id = 'subject-a' AND seq IN (2, 3)")
    sql(session, "DELETE FROM consent_events WHERE subject_id = 'subject-c' AND seq = 2")
    found = ledger.verify(session)
    assert [(b.subject_id, b.seq) for b in found] == [("subject-a", 2), ("subject-c", 3)]
    assert ledger.verify(session, "subject-b") == []
    assert [b.subject_id for b in ledger.verify(session, "subject-c")] == ["subject-c"]


def test_verify_reads_in_batches_not_one_query_per_person(app, session, monkeypatch):
    from sqlalchemy import event


    for i in range(30):
        ledger.append(session, f"subject-{i:02}", "demo", "scoring", 1, "grant", "form", T0)
    session.commit()
    monkeypatch.setattr(ledger, "BATCH", 10)
    statements = []
    event.listen(session.get_bind(), "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert ledger.verify(session) == []
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 6, selects  # the event stream, 3 batches of states, the orphan check


@pytest.mark.parametrize("writers, each", [(2, 15), (4, 5)])
def test_racing_writers_for_one_person_keep_one_chain(session, writers, each, sessions):
    start, errors = threading.Barrier(writers), []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with sessions() as s:
                    purpose = "scoring" if (n + i) % 2 else "research"
                    ledger.append(s, "racer", "demo", purpose, 1, "grant", "form", T0 + dt.timedelta(seconds=i))
                    s.commit()
        except Exception as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    seqs = session.scalars(select(ConsentEvent.seq).where(ConsentEvent.subject_id == "racer")
                           .order_by(ConsentEvent.seq)).all()
    assert seqs == list(range(1, writers * each + 1))
    assert ledger.verify(session) == []


def test_a_writer_that_loses_the_race_retries_on_the_new_end_of_the_chain(session, monkeypatch):
    build_chain(session)
    real, calls = ledger._next_link, []

    def stale_once(s, subject_id):
        calls.append(subject_id)
        return (4, "0" * 64) if len(calls) == 1 else real(s, subject_id)  # seq 4 was just taken

    monkeypatch.setattr(ledger, "_next_link", stale_once)
    event = ledger.append(session, "subject-a", "demo", "research", 1, "withdraw", "form", T0)
    session.commit()
    assert (event.seq, len(calls)) == (5, 2)
    assert ledger.verify(session) == []


def changes(*steps):
    return [ledger.Change("demo", purpose, 1, action, "optout", T0 + dt.timedelta(minutes=i))
            for i, (purpose, action) in enumerate(steps, start=10)]


def test_events_appended_all_at_once_chain_on_and_leave_the_state_of_the_last(session):
    from sqlalchemy import event

    build_chain(session)
    statements = []
    event.listen(session.get_bind(), "before_cursor_execute", lambda *args: statements.append(args[2]))
    ledger.append_all(session, "subject-a", changes(("scoring", "withdraw"), ("research", "withdraw"),
                                                    ("scoring", "grant"), ("marketing", "withdraw")))
    session.commit()

    events = session.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == "subject-a")
                             .order_by(ConsentEvent.seq)).all()
    assert [(e.seq, e.purpose, e.action) for e in events[4:]] == [
        (5, "scoring", "withdraw"), (6, "research", "withdraw"), (7, "scoring", "grant"), (8, "marketing", "withdraw")]
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    states = {s.purpose: (s.status, s.event_id) for s in session.scalars(select(ConsentState))}
    assert states == {"scoring": ("granted", events[6].id), "research": ("withdrawn", events[5].id),
                      "marketing": ("withdrawn", events[7].id)}
    assert ledger.verify(session) == []
    # One read of the chain's end and one write of the states, whatever the number of events; the events go in
    # one INSERT where the database returns many rows' ids in order (PostgreSQL), else one each (SQLite).
    one_each = session.get_bind().dialect.name == "sqlite"
    assert len([s for s in statements if s.lstrip().startswith("INSERT INTO consent_events")]) == (4 if one_each else 1)
    assert len([s for s in statements if s.lstrip().startswith("INSERT INTO consent_state")]) == 1
    assert len([s for s in statements if s.lstrip().startswith("SELECT consent_events.seq")]) == 1


def test_events_appended_all_at_once_start_a_new_chain_and_a_naive_time_is_refused(session):
    ledger.append_all(session, "optout:r-1", changes(("scoring", "withdraw")))
    session.commit()
    (filed,) = session.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == "optout:r-1")).all()
    assert (filed.seq, filed.prev_hash, filed.hash) == (1, ledger.GENESIS, ledger.event_hash(filed))
    assert ledger.verify(session) == []
    with pytest.raises(ValueError, match="timezone"):
        ledger.append_all(session, "optout:r-2", [ledger.Change("demo", "scoring", 1, "withdraw", "optout",
                                                                dt.datetime(2026, 1, 1))])


def test_a_chain_started_afresh_is_written_without_reading_its_end_and_never_forks(session):
    from sqlalchemy import event
    from sqlalchemy.exc import IntegrityError

    statements = []
    event.listen(session.get_bind(), "before_cursor_execute", lambda *args: statements.append(args[2]))
    ledger.start_chain(session, "optout:r-1", changes(("scoring", "withdraw"), ("research", "withdraw")))
    session.commit()
    events = session.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == "optout:r-1")
                             .order_by(ConsentEvent.seq)).all()
    assert [(e.seq, e.purpose) for e in events] == [(1, "scoring"), (2, "research")]
    assert events[0].prev_hash == ledger.GENESIS and events[1].prev_hash == events[0].hash
    assert {s.purpose: s.status for s in session.scalars(select(ConsentState))} == {
        "scoring": "withdrawn", "research": "withdrawn"}
    assert ledger.verify(session) == []
    assert not [s for s in statements if s.lstrip().startswith("SELECT consent_events.seq")]  # nothing read first
    # Started again, the chain would fork at seq 1: the database refuses, and the chain stays as it was.
    session.commit()
    with pytest.raises(IntegrityError):
        ledger.start_chain(session, "optout:r-1", changes(("marketing", "withdraw")))
    session.rollback()
    assert len(session.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == "optout:r-1")).all()) == 2
    assert ledger.verify(session) == []
