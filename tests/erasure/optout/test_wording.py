"""What the status page says of each step: a service of the platform's own confirms what it deleted."""
import datetime as dt

from erasure.models import ErasureStep, StepKind, StepStatus
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
