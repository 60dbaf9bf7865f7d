"""What the status page says of each step: a service of the platform's own confirms what it deleted; a revocation
that waits is said in words, not in the network's answer."""
import datetime as dt
from types import SimpleNamespace

from erasure.models import ErasureStep, OptOutRequest, StepKind, StepStatus
from erasure.optout import wording

NOW = dt.datetime(2026, 11, 25, 19, 0, 42, tzinfo=dt.UTC)
KINDS = {"platform": "sql", "billing": "http"}


def purged(target: str, rows: int) -> ErasureStep:
    store, _, category = target.partition("/")
    return ErasureStep(kind=StepKind.PURGE, target=target, status=StepStatus.DONE, done_at=NOW,
                       result={"store": store, "category": category, "rows": rows})


def test_a_service_confirms_what_it_deleted():
    assert wording.step_outcome(purged("billing/invoices", 2), NOW, KINDS) == (
        "Billing service confirmed 2 invoices deleted (25 November 2026, 19:00 UTC).")
    assert wording.step_title(purged("billing/invoices", 2), {}, KINDS) == (
        "Have the Billing service delete your invoices")


def test_a_table_says_what_it_held_in_plain_words():
    assert wording.step_outcome(purged("platform/posts", 20), NOW, KINDS) == (
        "Deleted 20 posts (25 November 2026, 19:00 UTC).")
    assert wording.step_title(purged("platform/posts", 20), {}, KINDS) == "Delete your posts"
    assert wording.step_outcome(purged("billing/invoices", 2), NOW) == (
        "Deleted 2 invoices (25 November 2026, 19:00 UTC).")
    assert wording.step_outcome(purged("platform/influence scores", 1), NOW, KINDS) == (
        "Deleted 1 influence score (25 November 2026, 19:00 UTC).")
    assert wording.step_outcome(purged("platform/mailing list", 1), NOW, KINDS) == (
        "Deleted 1 mailing list entry (25 November 2026, 19:00 UTC).")


def test_a_service_is_named_after_its_store():
    assert wording.service_name("billing") == "Billing service"
    assert wording.service_name("crm_sync") == "Crm sync service"
    assert wording.service_name("search-service") == "Search service"
    assert wording.service_confirmed("billing", [("invoices", 2), ("payments", 1)]) == (
        "Billing service confirmed 2 invoices and 1 payment deleted")


def revoking(waiting: str | None) -> ErasureStep:
    """A revocation at Demo Social that has not gone through: its network's answer is the raw error."""
    request = OptOutRequest(deadline=dt.datetime(2027, 1, 5, 9, 30, tzinfo=dt.UTC))
    return ErasureStep(kind=StepKind.REVOKE, target="demo", status=StepStatus.RETRYING, request=request,
                       last_error="HTTP 503 from Demo Social (temporarily_unavailable)", not_before=NOW,
                       result={"network": "demo", "waiting": waiting} if waiting else {})


def test_a_pending_revocation_is_said_in_words_with_the_deadline():
    networks = {"demo": SimpleNamespace(name="Demo Social")}
    assert wording.step_outcome(revoking("unanswered"), NOW, KINDS, networks) == (
        "Demo Social is not answering; we keep trying and will finish by 5 January 2027.")
    assert wording.step_outcome(revoking("refused"), NOW, KINDS, networks) == (
        "Demo Social has not accepted our request yet; we keep trying, our operators are looking into it, "
        "and we will finish by 5 January 2027.")
    assert wording.step_outcome(revoking(None), NOW, KINDS, networks) == (
        "Demo Social has not confirmed yet; we keep trying and will finish by 5 January 2027.")


def test_the_second_pass_of_a_request_laid_with_one_says_what_it_waits_for():
    again = ErasureStep(kind=StepKind.PURGE, target="platform/posts", status=StepStatus.PENDING,
                        params={"store": "platform", "entry": "posts.author_id", "pass": 2})
    assert wording.step_title(again, {}, KINDS) == (
        "Once access is revoked, delete any posts that came in meanwhile")
    assert wording.step_outcome(again, NOW, KINDS) == "Waiting until access is revoked everywhere."


def store_purged(store: str, counts: list[tuple[str, int]]) -> ErasureStep:
    categories = [{"entry": f"{c}.id", "category": c, "rows": n, "rows_at_start": n} for c, n in counts]
    return ErasureStep(kind=StepKind.PURGE, target=store, status=StepStatus.DONE, done_at=NOW,
                       params={"store": store, "entries": [p["entry"] for p in categories],
                               "categories": list(dict.fromkeys(c for c, _ in counts))},
                       result={"store": store, "rows": sum(n for _, n in counts), "categories": categories})


def test_one_step_for_a_store_still_names_each_category():
    step = store_purged("platform", [("profile", 1), ("posts", 20), ("endorsements", 2), ("endorsements", 1)])
    assert wording.step_title(step, {}, KINDS) == "Delete your profile, posts and endorsements"
    assert wording.step_outcome(step, NOW, KINDS) == (
        "Deleted 1 profile entry, 20 posts and 3 endorsements (25 November 2026, 19:00 UTC).")
    billing = store_purged("billing", [("invoices", 2), ("payments", 1)])
    assert wording.step_title(billing, {}, KINDS) == "Have the Billing service delete your invoices and payments"
    assert wording.step_outcome(billing, NOW, KINDS) == (
        "Billing service confirmed 2 invoices and 1 payment deleted (25 November 2026, 19:00 UTC).")


def verified(late: list[tuple[str, str, int]]) -> ErasureStep:
    return ErasureStep(kind=StepKind.VERIFY, target="all stores", status=StepStatus.DONE, done_at=NOW,
                       result={"residual_rows": 0,
                               "late_rows": [{"store": s, "category": c, "rows": n} for s, c, n in late]})


def test_verify_says_it_looks_again_and_what_came_in_while_access_was_being_revoked():
    step = verified([("platform", "posts", 1), ("billing", "invoices", 2)])
    assert wording.step_title(step, {}, KINDS, late_while_revoking=True) == (
        "Check every store again, and delete anything that came in while access was being revoked")
    assert wording.step_outcome(step, NOW, KINDS, late_while_revoking=True) == (
        "Nothing is left: deleted 1 post and 2 invoices that came in while access was being revoked.")
    assert wording.step_outcome(verified([]), NOW, KINDS, late_while_revoking=True) == "Nothing is left."
    # Nothing to revoke (a person who never connected), or a second pass looked after the revocations.
    assert wording.step_title(step, {}, KINDS) == "Check every store again, and delete anything that came in meanwhile"
    assert wording.step_outcome(verified([("platform", "posts", 3)]), NOW, KINDS) == (
        "Nothing is left: deleted 3 posts that came in meanwhile.")


def test_what_waits_for_the_revocations_says_so_while_one_is_not_confirmed():
    for kind in (StepKind.FORGET, StepKind.VERIFY, StepKind.RECEIPT):
        step = ErasureStep(kind=kind, target="x", status=StepStatus.PENDING)
        assert wording.step_outcome(step, NOW, KINDS, revoking=True) == (
            "Waiting until access is revoked everywhere.")
        assert wording.step_outcome(step, NOW, KINDS) == "Waiting its turn."  # access is revoked
    purge = ErasureStep(kind=StepKind.PURGE, target="platform", status=StepStatus.PENDING, params={})
    assert wording.step_outcome(purge, NOW, KINDS, revoking=True) == "Waiting its turn."
