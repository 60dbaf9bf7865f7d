"""Verifying a receipt for the API: the offline verifier's checks, with this service's own log behind a bare receipt."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from erasure.models import Receipt
from erasure.receipts import issue
from erasure.verifier.verify import CHECKS, Report, Verifier

NOT_AS_ISSUED = ("format: the receipt has spaces or line breaks around it; send it exactly as it was issued, "
                 "character for character")
NOT_IN_LOG = "log_inclusion: this receipt is not in this service's log"


@dataclass(frozen=True)
class Verification:
    """The API's answer. Every check is true (passed) or false (failed, or could not run); `valid` is true only
    when every check that applies passed."""

    valid: bool
    checks: dict[str, bool]
    claims: dict
    problems: list[str]


def verify(session: Session, body: dict, jwks: dict, log_key: str) -> Verification:
    """Verify a bare receipt ({"receipt"}) or a bundle ({"receipt", "log", "owner_proof"?}).

    The service holds the log: a bare receipt is looked up in it and checked with an inclusion proof to
    the latest checkpoint, as if it came in the bundle the person downloads. A bundle's own proof is
    checked as sent. `owner` applies only to a bundle that carries an owner proof.
    """
    receipt = body["receipt"]
    if receipt.strip().lstrip("\ufeff") != receipt:
        # The offline verifier forgives a file's trailing newline; the API takes the receipt itself, and a
        # receipt with anything around it is not the leaf the log holds.
        return Verification(False, dict.fromkeys(CHECKS, False), {}, [NOT_AS_ISSUED])
    verifier = Verifier(jwks, log_key)
    is_bundle = "log" in body or "owner_proof" in body
    if is_bundle:
        report = verifier.verify(body)
    else:
        report = verifier.verify(receipt)
        logged = in_log(session, receipt, report)
        if logged is None:
            report.checks["log_inclusion"] = False
            report.problems.append(NOT_IN_LOG)
        else:
            report = verifier.verify(issue.bundle(session, logged))
    applies = [name for name in CHECKS if name != "owner" or "owner_proof" in body]
    valid = report.valid and all(report.checks[name] is True for name in applies)
    return Verification(valid, {name: bool(ok) for name, ok in report.checks.items()}, report.claims or {},
                        list(report.problems))


def in_log(session: Session, receipt: str, report: Report) -> Receipt | None:
    """The log's entry for exactly this receipt text, found by the receipt_id it claims."""
    claimed = (report.claims or {}).get("receipt_id")
    try:
        receipt_id = str(uuid.UUID(claimed)) if isinstance(claimed, str) else None
    except ValueError:
        receipt_id = None
    if receipt_id is None or receipt_id != claimed:
        return None
    logged = session.get(Receipt, receipt_id)
    return logged if logged is not None and logged.jws == receipt else None
