"""The receipt page's summary: per kind, what was deleted, and what each service confirmed it deleted."""
from erasure.receipts.views import summary

KINDS = {"platform": "sql", "billing": "http"}


def claims(*purged: tuple[str, str, int], revoked: bool = True) -> dict:
    return {"completed_at": "2026-11-25T19:00:42Z",
            "revocations": [{"network": "demo", "outcome": "revoked", "at": "2026-11-25T19:00:03Z"}] if revoked else [],
            "purged": [{"store": s, "category": c, "rows": n} for s, c, n in purged]}


def test_a_service_line_reads_as_its_confirmation():
    text = summary(claims(("platform", "posts", 20), ("platform", "profile", 1), ("billing", "invoices", 2)),
                   {}, KINDS)
    assert text == ("On 25 November 2026 at 19:00 UTC we revoked our access at demo and deleted 20 posts and "
                    "1 profile entry. Billing service confirmed 2 invoices deleted.")


def test_a_service_that_deleted_nothing_claims_nothing():
    text = summary(claims(("platform", "posts", 0), ("billing", "invoices", 0), revoked=False), {}, KINDS)
    assert text == "On 25 November 2026 at 19:00 UTC we found no rows of yours to delete."


def test_only_a_service_deleted_something():
    text = summary(claims(("platform", "posts", 0), ("billing", "invoices", 2), revoked=False), {}, KINDS)
    assert text == "On 25 November 2026 at 19:00 UTC, Billing service confirmed 2 invoices deleted."


def test_without_kinds_every_store_reads_as_before():
    text = summary(claims(("billing", "invoices", 2), revoked=False), {})
    assert text == "On 25 November 2026 at 19:00 UTC we deleted 2 invoices."
