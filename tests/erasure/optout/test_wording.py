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


def test_a_table_still_says_rows():
    assert wording.step_outcome(purged("platform/posts", 20), NOW, KINDS) == (
        "Deleted 20 rows (25 November 2026, 19:00 UTC).")
    assert wording.step_title(purged("platform/posts", 20), {}, KINDS) == "Delete your posts (in the platform store)"
    assert wording.step_outcome(purged("billing/invoices", 2), NOW) == "Deleted 2 rows (25 November 2026, 19:00 UTC)."


def test_a_service_is_named_after_its_store():
    assert wording.service_name("billing") == "Billing service"
    assert wording.service_name("crm_sync") == "Crm sync service"
    assert wording.service_name("search-service") == "Search service"
    assert wording.service_confirmed("billing", [("invoices", 2), ("payments", 1)]) == (
        "Billing service confirmed 2 invoices and 1 payments deleted")


def store_purged(store: str, counts: list[tuple[str, int]]) -> ErasureStep:
    categories = [{"entry": f"{c}.id", "category": c, "rows": n, "rows_at_start": n} for c, n in counts]
    return ErasureStep(kind=StepKind.PURGE, target=store, status=StepStatus.DONE, done_at=NOW,
                       params={"store": store, "entries": [p["entry"] for p in categories],
                               "categories": list(dict.fromkeys(c for c, _ in counts))},
                       result={"store": store, "rows": sum(n for _, n in counts), "categories": categories})


def test_one_step_for_a_store_still_names_each_category():
    step = store_purged("platform", [("profile", 1), ("posts", 20), ("endorsements", 2), ("endorsements", 1)])
    assert wording.step_title(step, {}, KINDS) == "Delete your profile, posts and endorsements (in the platform store)"
    assert wording.step_outcome(step, NOW, KINDS) == (
        "Deleted 1 row of profile, 20 rows of posts and 3 rows of endorsements (25 November 2026, 19:00 UTC).")
    billing = store_purged("billing", [("invoices", 2), ("payments", 1)])
    assert wording.step_title(billing, {}, KINDS) == "Have the Billing service delete your invoices and payments"
    assert wording.step_outcome(billing, NOW, KINDS) == (
        "Billing service confirmed 2 invoices and 1 payments deleted (25 November 2026, 19:00 UTC).")
