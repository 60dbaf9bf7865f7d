"""Each erasure step (erasure/engine/steps.py) run directly, as the worker runs it: against the test's database,
Demo Social on a loopback port and the demo platform store. Every step can run twice without harm."""
from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import create_engine, event, func, select, text, update

from app.db import utcnow
from app.mail import MailError
from app.models import User
from consent import ledger
from consent.models import ConsentEvent
from erasure.context import context_from_app
from erasure.engine import steps
from erasure.engine.sequencing import Sequencing
from erasure.models import ErasureStep, OptOutRequest, PooledReceipt, Receipt
from erasure.optout import mail_text
from erasure.optout.service import OWN_RECORDS, second_pass
from erasure.receipts import issue
from tests.erasure.engine.helpers_processes import held_rows
from tests.erasure.helpers_optout import (
    check_consent,
    demo_token_active,
    joined_person,
    lay_second_pass,
    others_checksum,
    outbox,
    platform_rows,
    purged_rows,
    sealed_tokens,
    submit_optout,
)


@dataclasses.dataclass
class Left:
    """A person who joined through Demo Social as account 1002 ("omar") and left through the form."""

    request_id: str
    person: User
    access: str
    refresh: str
    status_path: str


@pytest.fixture
def ctx(app):
    return context_from_app(app)


def leave(app, client, make_person, login, csrf_post, scope: str = "all") -> Left:
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    access, refresh = sealed_tokens(app, "1002")
    status_path = submit_optout(client, csrf_post, scope)
    return Left(urlsplit(status_path).path.rsplit("/", 1)[1], person, access, refresh, status_path)


@pytest.fixture
def left(app, client, make_person, login, csrf_post) -> Left:
    return leave(app, client, make_person, login, csrf_post)


def the_step(db, request_id: str, kind: str, target: str | None = None, again: bool = False) -> ErasureStep:
    """The step of this kind and target; of a purge, the first pass, or with `again` the second (of a request
    laid before verify took that over)."""
    query = select(ErasureStep).where(ErasureStep.request_id == request_id, ErasureStep.kind == kind)
    found = [s for s in db.scalars(query if target is None else query.where(ErasureStep.target == target))
             if second_pass(s) == again]
    assert len(found) == 1, [(s.kind, s.target) for s in found]
    return found[0]


def no_heartbeat(result: dict | None = None) -> None:
    pass


class Crash(Exception):
    """The machine going down in the middle of a step."""


def run(sessions, ctx, request_id: str, kind: str, target: str | None = None, *, heartbeat=no_heartbeat,
        change=lambda step, request: None, again: bool = False) -> steps.Result:
    """Run one step of the request as the worker does: on the step and request as read at the claim,
    detached (`change` may alter them, in memory only), committing what the step wrote."""
    with sessions() as db, requests.Session() as http:
        step = the_step(db, request_id, kind, target, again)
        request = db.get(OptOutRequest, request_id)
        db.expunge_all()
        db.commit()  # the claim's transaction ends with the claim: the step begins a transaction of its own
        change(step, request)
        result = steps.run(db, ctx, step, request, utcnow(), http, heartbeat, timeout=(2, 5))
        db.commit()
        return result


def record(sessions, step_id: str, result: steps.Result) -> None:
    """Mark a step done with its outcome, as the worker records it: what later steps and the receipt read."""
    assert result.done, result
    with sessions() as db:
        db.execute(update(ErasureStep).where(ErasureStep.id == step_id)
                   .values(status="done", done_at=utcnow(), result=result.result))
        db.commit()


def run_all_before(sessions, ctx, request_id: str, kind: str, again: bool = False) -> None:
    """Run and record, in order, every step not yet done that comes before the first of this kind
    (with `again`, the first purge of the second pass)."""
    with sessions() as db:
        laid = [(s.id, s.kind, s.target, second_pass(s)) for s in db.scalars(
            select(ErasureStep).where(ErasureStep.request_id == request_id, ErasureStep.status != "done")
            .order_by(ErasureStep.position))]
    for step_id, step_kind, target, second in laid:
        if step_kind == kind and second == again:
            return
        record(sessions, step_id, run(sessions, ctx, request_id, step_kind, target, again=second))


def add_post(platform_url: str, author: str) -> None:
    engine = create_engine(platform_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO posts (author_id, body, created_at) VALUES (:a, 'back again', :t)"),
                     {"a": author, "t": dt.datetime(2026, 3, 1)})
    engine.dispose()


# --- revoke ------------------------------------------------------------------------------------------

def test_revoke_ends_both_tokens_at_the_network_and_can_run_again(sessions, ctx, left, demo_network):
    assert demo_token_active(demo_network, left.access) and demo_token_active(demo_network, left.refresh)

    result = run(sessions, ctx, left.request_id, "revoke", "demo")
    assert result.done and result.clear_params  # the worker destroys the sealed tokens with the outcome
    assert (result.result["network"], result.result["outcome"]) == ("demo", "revoked")
    assert not demo_token_active(demo_network, left.access) and not demo_token_active(demo_network, left.refresh)

    again = run(sessions, ctx, left.request_id, "revoke", "demo")
    assert again.done and again.result["outcome"] in ("revoked", "already_invalid")


def test_revoke_at_a_busy_network_is_tried_again_when_it_asks(sessions, ctx, left, demo_network, demo_state):
    demo_state.faults.set("revoke", status=503, retry_after=30)
    result = run(sessions, ctx, left.request_id, "revoke", "demo")
    assert not result.done and result.retry and not result.attention
    assert result.retry_after == 30
    assert demo_token_active(demo_network, left.access)  # nothing was revoked, and nothing claims it was


def test_revoke_at_a_network_no_longer_in_the_catalogue_needs_a_person(sessions, ctx, left):
    result = run(sessions, ctx, left.request_id, "revoke", "demo",
                 change=lambda step, request: setattr(step, "target", "gone"))
    assert not result.done and result.retry and result.attention
    assert "'gone' is no longer in the catalogue" in result.error


# --- purge -------------------------------------------------------------------------------------------

def test_purge_deletes_the_persons_rows_and_nobody_elses(sessions, ctx, left, platform_url):
    others = others_checksum(platform_url, "1002")
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 20

    result = run(sessions, ctx, left.request_id, "purge", "platform")  # one step for every entry of the store
    assert result.done and result.result["store"] == "platform"
    assert {"entry": "posts.author_id", "category": "posts", "rows": 20, "rows_at_start": 20} in \
        result.result["categories"]
    assert [c["category"] for c in result.result["categories"]] == [
        e.category for e in ctx.datamap.entries if e.store == "platform"]
    assert result.result["rows"] == sum(c["rows"] for c in result.result["categories"])
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0
    assert others_checksum(platform_url, "1002") == others


def test_purge_of_shared_rows_takes_the_person_out_and_leaves_the_rows(sessions, ctx, left, platform_url):
    received = platform_rows(platform_url, "endorsements", "receiver_id", "1002")
    given = platform_rows(platform_url, "endorsements", "giver_id", "1002")
    engine = create_engine(platform_url)
    with engine.connect() as conn:
        total = conn.scalar(text("SELECT count(*) FROM endorsements"))
    assert received > 0

    result = run(sessions, ctx, left.request_id, "purge", "platform")
    assert result.done and purged_rows([the_result("purge", result)])["endorsements received"] == received
    assert platform_rows(platform_url, "endorsements", "receiver_id", "1002") == 0
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM endorsements")) == total - given  # the givers keep theirs
    engine.dispose()


def test_a_purge_cut_short_counts_every_row_once_when_it_runs_again(sessions, ctx, left, platform_url):
    """The worker records the rows found at the first attempt, for every entry of the store at once, before
    it purges any; a rerun after a crash reports those, for the entries purged before the crash too."""
    held = held_rows(platform_url, SimpleNamespace(account="1002", handle="omar", email=left.person.email))
    beats: list[dict] = []

    def crash_after_the_first_batch(result: dict | None = None) -> None:
        if result is None:
            raise Crash  # the machine goes down once the first batch is committed
        beats.append(result)

    with pytest.raises(Crash):
        run(sessions, ctx, left.request_id, "purge", "platform", heartbeat=crash_after_the_first_batch)
    assert len(beats) == 1, "one write of the counts, whatever the entries"
    assert {c["category"]: c["rows_at_start"] for c in beats[0]["categories"]} == held
    assert platform_rows(platform_url, "profiles", "account_id", "1002") == 0  # the first entry's batch is in
    with sessions() as db:  # what the worker's heartbeat wrote to the step
        db.execute(update(ErasureStep).where(ErasureStep.id == the_step(db, left.request_id, "purge", "platform").id)
                   .values(result=beats[0]))
        db.commit()

    rerun = run(sessions, ctx, left.request_id, "purge", "platform")
    # Not 0 for the profile purged before the crash: the receipt says what the person had.
    assert rerun.done and purged_rows([the_result("purge", rerun)]) == held
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0


def test_a_purge_of_an_entry_the_data_map_no_longer_lists_needs_a_person(sessions, ctx, left, platform_url):
    result = run(sessions, ctx, left.request_id, "purge", "platform",
                 change=lambda step, request: setattr(step, "params", {**step.params,
                                                                       "entries": ["old_posts.author_id"]}))
    assert not result.done and result.attention
    assert "the data map no longer lists platform/old_posts.author_id" in result.error
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 20


def test_a_purge_step_laid_for_one_entry_still_runs(sessions, ctx, left, platform_url):
    """Steps laid by an earlier version purged one entry each: by its key, or, before store kinds, by the table
    and column. They still run after an upgrade."""
    with sessions() as db:
        assert the_step(db, left.request_id, "purge", "platform").params == {
            "store": "platform", "entries": [e.key for e in ctx.datamap.entries if e.store == "platform"],
            "categories": list(dict.fromkeys(e.category for e in ctx.datamap.entries if e.store == "platform"))}
    for laid_before, rows in (({"store": "platform", "table": "posts", "column": "author_id"}, 20),
                              ({"store": "platform", "entry": "scores.handle"}, 1)):
        result = run(sessions, ctx, left.request_id, "purge", "platform",
                     change=lambda step, request, laid=laid_before: setattr(step, "params", laid))
        assert result.done and (result.result["rows"], result.result["rows_at_start"]) == (rows, rows)
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0


def the_result(kind: str, result: steps.Result) -> ErasureStep:
    """A step as the worker records it, with the result given (for the tests' helpers)."""
    return ErasureStep(kind=kind, result=result.result)


# --- forget: Ownstory's own records ---------------------------------------------------------------------

def test_forget_deletes_the_account_and_consents_and_files_the_withdrawal_under_the_request(
        app, sessions, ctx, left, api_token):
    with sessions() as db:
        assert db.get(User, left.person.id) is not None
        # The person's consent to scoring, and its withdrawal by the opt-out.
        assert db.scalar(select(func.count()).select_from(ConsentEvent)
                         .where(ConsentEvent.subject_id == left.person.id)) == 2

    result = run(sessions, ctx, left.request_id, "forget", OWN_RECORDS)
    assert result.done and result.result == {"grants": 0, "account": 1, "consent_events": 2}
    with sessions() as db:
        assert db.get(User, left.person.id) is None
        assert db.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == left.person.id)).all() == []
        filed = db.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == f"optout:{left.request_id}")).all()
        assert [(e.network, e.purpose, e.action, e.method) for e in filed] == [
            ("demo", "scoring", "withdraw", "optout")]
    assert check_consent(app, api_token, "1002") == "opted_out"  # the suppression entry still answers

    again = run(sessions, ctx, left.request_id, "forget", OWN_RECORDS)
    assert again.done and again.result == {"grants": 0, "account": 0, "consent_events": 0}
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(ConsentEvent)
                         .where(ConsentEvent.subject_id == f"optout:{left.request_id}")) == 1


def test_forget_deletes_each_table_in_one_statement_reading_none_of_the_persons_rows_first(
        app, sessions, ctx, left):
    engine, seen = app.extensions["ownstory_db"]["engine"], []

    def capture(_conn, _cursor, statement, *_args) -> None:
        seen.append(" ".join(statement.split()))

    try:
        result = run(sessions, ctx, left.request_id, "forget", OWN_RECORDS,
                     change=lambda _step, _request: event.listen(engine, "before_cursor_execute", capture))
    finally:
        event.remove(engine, "before_cursor_execute", capture)

    assert result.done and result.result == {"grants": 0, "account": 1, "consent_events": 2}
    for table in ("grants", "consent_state", "consent_events", "users"):
        assert len([s for s in seen if s.startswith(f"DELETE FROM {table} ")]) == 1, table
    # Nothing of the person's is read, nor the end of the request's own chain, where the withdrawal is filed: that
    # chain starts with forget's outcome (ledger.start_chain).
    reads = [s for s in seen if s.startswith("SELECT") and ("FROM grants" in s or "FROM consent_events" in s)]
    assert reads == [], reads
    with sessions() as db:
        assert ledger.verify(db) == []  # the filed withdrawal's chain and its state hold together


def test_forget_after_leaving_one_network_keeps_the_account(app, client, make_person, login, csrf_post, sessions,
                                                            ctx):
    one = leave(app, client, make_person, login, csrf_post, scope="demo")
    result = run(sessions, ctx, one.request_id, "forget", OWN_RECORDS)
    assert result.done and result.result == {"grants": 0, "account": 0, "consent_events": 0}
    with sessions() as db:
        assert db.get(User, one.person.id).email == one.person.email
    assert client.get("/me").status_code == 200  # still signed in, still a member


# --- verify --------------------------------------------------------------------------------------------

def test_verify_purges_rows_written_after_the_purge_and_counts_them_late(sessions, ctx, left, platform_url):
    run_all_before(sessions, ctx, left.request_id, "verify")
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0
    add_post(platform_url, "1002")  # the platform wrote one more while the steps ran

    result = run(sessions, ctx, left.request_id, "verify")
    assert result.done
    assert result.result == {"residual_rows": 0, "late_rows": [{"store": "platform", "category": "posts", "rows": 1}]}
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0


def keep_progress(sessions, request_id: str, kind: str, result: dict) -> None:
    """What the worker's heartbeat writes to a step: the progress a rerun reads."""
    with sessions() as db:
        db.execute(update(ErasureStep).where(ErasureStep.id == the_step(db, request_id, kind).id)
                   .values(result=result))
        db.commit()


def test_verify_cut_short_counts_each_late_row_once_when_it_runs_again(sessions, ctx, left, platform_url):
    """Verify records the late rows it found, in one write, before it purges any; a rerun after a crash reports
    them, though the rows are gone."""
    run_all_before(sessions, ctx, left.request_id, "verify")
    for _ in range(3):
        add_post(platform_url, "1002")
    beats: list[dict] = []

    def crash_after_the_first_batch(result: dict | None = None) -> None:
        if result is None:
            raise Crash  # the machine goes down once the batch is committed
        beats.append(result)

    with pytest.raises(Crash):
        run(sessions, ctx, left.request_id, "verify", heartbeat=crash_after_the_first_batch)
    assert len(beats) == 1 and [(f["category"], f["rows_at_start"]) for f in beats[0]["found"]] == [("posts", 3)]
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0  # the batch is in
    keep_progress(sessions, left.request_id, "verify", beats[0])

    rerun = run(sessions, ctx, left.request_id, "verify")
    assert rerun.done
    assert rerun.result == {"residual_rows": 0, "late_rows": [{"store": "platform", "category": "posts", "rows": 3}]}


def test_verify_with_rows_left_after_its_purge_needs_attention_and_counts_what_it_deleted_once(
        sessions, ctx, left, platform_url):
    run_all_before(sessions, ctx, left.request_id, "verify")
    add_post(platform_url, "1002")
    add_post(platform_url, "1002")
    # The platform writes the person's posts back as fast as they are deleted.
    engine = create_engine(platform_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER back AFTER DELETE ON posts WHEN old.author_id = '1002' BEGIN "
                          "INSERT INTO posts (author_id, body, created_at) VALUES (old.author_id, old.body, "
                          "old.created_at); END"))
    beats: list[dict] = []
    try:
        result = run(sessions, ctx, left.request_id, "verify", heartbeat=lambda result=None: beats.append(result))
        assert not result.done and result.retry and result.attention
        assert result.error == "rows remain after purge: 2 in platform/posts"
        assert platform_rows(platform_url, "posts", "author_id", "1002") == 2
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER back"))
        engine.dispose()
    keep_progress(sessions, left.request_id, "verify", beats[-1])

    # Someone stops the platform; the next try deletes what is left. Four posts were deleted: each counted once.
    again = run(sessions, ctx, left.request_id, "verify")
    assert again.done
    assert again.result == {"residual_rows": 0, "late_rows": [{"store": "platform", "category": "posts", "rows": 4}]}
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0


def test_verify_without_the_identities_needs_a_person(sessions, ctx, left):
    result = run(sessions, ctx, left.request_id, "verify",
                 change=lambda step, request: setattr(request, "identities_sealed", None))
    assert not result.done and result.attention
    assert "identities are gone" in result.error


# --- receipt -------------------------------------------------------------------------------------------

def test_the_receipt_says_what_was_done_and_is_issued_once(client, sessions, ctx, left, platform_url):
    run_all_before(sessions, ctx, left.request_id, "verify")
    add_post(platform_url, "1002")  # written after the purge: verify takes it
    with sessions() as db:
        verify_id = the_step(db, left.request_id, "verify").id
    record(sessions, verify_id, run(sessions, ctx, left.request_id, "verify"))

    handed = run(sessions, ctx, left.request_id, "receipt")
    assert handed.handed_off and not handed.done  # signed into the log's pool, for the sequencer's next batch
    assert run(sessions, ctx, left.request_id, "receipt").handed_off  # a rerun finds it pooled: signed once
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(PooledReceipt)) == 1
    Sequencing(sessions, ctx).turn(patient=True)
    result = run(sessions, ctx, left.request_id, "receipt")
    assert result.done  # a rerun after the batch finds it logged
    again = run(sessions, ctx, left.request_id, "receipt")
    assert again.result == result.result  # the same receipt, at the same place in the log
    with sessions() as db:
        [receipt] = db.scalars(select(Receipt).where(Receipt.request_id == left.request_id)).all()
        assert db.get(OptOutRequest, left.request_id).receipt_id == receipt.id
    claims = issue.claims_of(receipt)
    assert [(r["network"], r["outcome"]) for r in claims["revocations"]] == [("demo", "revoked")]
    purged = {p["category"]: p["rows"] for p in claims["purged"]}
    assert purged["posts"] == 21  # 20 purged, and 1 caught late by verify
    assert claims["residual_rows"] == 0
    assert client.get(f"/api/v1/receipts/{receipt.id}").status_code == 200


# --- a request laid with a second purge pass -----------------------------------------------------------

def test_a_request_laid_with_a_second_pass_still_runs_it_and_counts_each_row_once(
        app, client, sessions, ctx, left, platform_url, worker):
    """Requests laid before verify took over the look after revocation have a second purge pass per store;
    such a request may still be open after an upgrade, and runs to completion as laid."""
    lay_second_pass(app, left.request_id)
    run_all_before(sessions, ctx, left.request_id, "purge", again=True)  # the revocation and the first pass
    with sessions() as db:
        assert purged_rows([the_step(db, left.request_id, "purge", "platform")])["posts"] == 20
    add_post(platform_url, "1002")  # the platform wrote one more, through the token, before it was revoked

    result = run(sessions, ctx, left.request_id, "purge", "platform", again=True)
    assert result.done and {p["category"]: p["rows"] for p in result.result["categories"] if p["rows"]} == {
        "posts": 1}
    assert [p["rows_at_start"] for p in result.result["categories"] if p["category"] == "posts"] == [1]
    with sessions() as db:
        record(sessions, the_step(db, left.request_id, "purge", "platform", again=True).id, result)
    add_post(platform_url, "1002")  # written after the second pass: verify takes it
    worker.drain()

    with sessions() as db:
        request = db.get(OptOutRequest, left.request_id)
        assert request.status == "completed"
        assert the_step(db, left.request_id, "verify").result["late_rows"] == [
            {"store": "platform", "category": "posts", "rows": 1}]
        claims = issue.claims_of(db.get_one(Receipt, request.receipt_id))
    assert {p["category"]: p["rows"] for p in claims["purged"]}["posts"] == 22  # 20, 1 by the second pass, 1 late
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0
    # The status page words it as it was laid.
    page = client.get(left.status_path).get_data(as_text=True)
    assert "Once access is revoked everywhere: delete anything that came in meanwhile, and our own records of you" \
        in page
    assert "Once access is revoked, delete any profile, posts" in page
    assert "Deleted 1 post, and Ownstory&#39;s own records of you." in page
    assert "Nothing is left: deleted 1 post that came in meanwhile." in page


# --- notify --------------------------------------------------------------------------------------------

def outcome_mails(app, address: str, subject: str) -> list:
    return [m for m in outbox(app) if m["To"] == address and m["Subject"] == subject]


def test_notify_mails_the_person_how_it_went(app, sessions, ctx, left):
    with sessions() as db:
        subject, _body = mail_text.outcome(db.get(OptOutRequest, left.request_id), ctx.base_url)
    assert outcome_mails(app, left.person.email, subject) == []

    result = run(sessions, ctx, left.request_id, "notify")
    assert result.done and result.result == {"sent": True}
    assert len(outcome_mails(app, left.person.email, subject)) == 1


def test_notify_when_mail_fails_is_tried_again(app, sessions, ctx, left):
    class Down:
        def send(self, *args, **kwargs):
            raise MailError("the mail server refused the connection")

    result = run(sessions, dataclasses.replace(ctx, mailer=Down()), left.request_id, "notify")
    assert not result.done and result.retry and not result.attention
    assert result.error == "the mail server refused the connection"


def test_notify_once_the_address_is_gone_sends_nothing(app, sessions, ctx, left):
    mails = len(outbox(app))
    result = run(sessions, ctx, left.request_id, "notify",
                 change=lambda step, request: setattr(request, "identities_sealed", None))
    assert result.done and result.result == {"sent": False}
    assert len(outbox(app)) == mails


# --- a kind nobody handles ---------------------------------------------------------------------------

def test_a_step_of_a_kind_nobody_handles_needs_a_person(sessions, ctx, left):
    result = run(sessions, ctx, left.request_id, "verify", change=lambda step, request: setattr(step, "kind", "shred"))
    assert not result.done and result.retry and result.attention
    assert result.error == "no handler for step kind 'shred'"
