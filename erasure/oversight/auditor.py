"""The auditor pages: receipts per day, verifying a receipt, checkpoints and their consistency, the export.

Auditors need to trust nothing here: verification runs erasure.verify (the offline verifier) against
the keys this service publishes, and the consistency page shows each hash it computes. Checking a
receipt, checking consistency and downloading the export are recorded in the audit trail.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import TextAreaField

from app import audit
from app.db import utcnow
from app.extensions import db
from app.staff import staff_only
from app.text import iso_utc
from erasure.models import Checkpoint, SigningKey
from erasure.oversight import queries
from erasure.receipts import issue, keys, log_trace, tlog
from erasure.receipts.verification import in_log
from erasure.verifier import note
from erasure.verifier.verify import CHECKS, UsageError, verify

bp = Blueprint("auditor", __name__, url_prefix="/auditor")
staff_only(bp, "auditor")

MAX_VERIFY_BYTES = 256 * 1024  # a bundle is a few kilobytes; the offline verifier takes up to 1 MiB
CHECKPOINT_PAGE = 25
CHECK_WORDS = {
    "format": "The input is a receipt (a compact JWS) or a bundle that can be read",
    "key_known": "It names a signing key this service publishes",
    "kid_thumbprint": "The key id is the key's RFC 7638 thumbprint",
    "signature": "The Ed25519 signature over the receipt is valid",
    "claims": "The receipt's contents are complete and well formed",
    "log_inclusion": "The receipt is in the transparency log, under the bundle's checkpoint",
    "checkpoint_signature": "That checkpoint is signed by this log's key",
    "owner": "The owner proof matches the receipt's subject commitment",
}


@bp.context_processor
def _words():
    return {"b64": log_trace.b64}


def _log_key_text() -> str | None:
    """The log's verifier key, if the log has one yet. Read only: a page view never makes a key."""
    row = db.session.scalar(select(SigningKey).where(SigningKey.purpose == "log", SigningKey.retired_at.is_(None)))
    return note.verifier_key(current_app.config["LOG_ORIGIN"], row.public_key) if row else None


# --- overview --------------------------------------------------------------------------------------

@bp.get("")
def overview():
    now = utcnow()
    per_day = queries.receipts_per_day(db.session, now)
    return render_template("auditor/overview.html", per_day=per_day, total=sum(n for _d, n in per_day),
                           latest=tlog.latest_checkpoint(db.session), log_key=_log_key_text())


# --- verify ----------------------------------------------------------------------------------------

class VerifyForm(FlaskForm):
    receipt = TextAreaField("Paste a receipt (the JWS) or a whole bundle (JSON)")
    bundle = FileField("Or upload a bundle file (.json)")


def _submitted(form: VerifyForm) -> tuple[str | bytes | None, str | None, str | None]:
    """(what to verify, how it came, a problem to show) from the form."""
    upload = form.bundle.data
    if upload is not None and getattr(upload, "filename", None):
        data = upload.stream.read(MAX_VERIFY_BYTES + 1)
        if len(data) > MAX_VERIFY_BYTES:
            return None, "file", f"That file is larger than {MAX_VERIFY_BYTES // 1024} KiB; a bundle is a few KiB."
        if not data.strip():
            return None, "file", "That file is empty."
        return data, "file", None
    pasted = (form.receipt.data or "").strip()
    if not pasted:
        return None, None, "Paste a receipt or a bundle, or choose a bundle file."
    if len(pasted.encode("utf-8", "surrogatepass")) > MAX_VERIFY_BYTES:
        return None, "pasted", f"That text is larger than {MAX_VERIFY_BYTES // 1024} KiB; a bundle is a few KiB."
    return pasted, "pasted", None


@bp.route("/verify", methods=["GET", "POST"])
def verify_page():
    form = VerifyForm()
    report, problem, checks, notes = None, None, [], []
    if form.validate_on_submit():
        data, how, problem = _submitted(form)
        if data is not None:
            jwks = keys.jwks(db.session)
            try:
                report = verify(data, jwks, _log_key_text())
                report = _with_log_proof(data, report, jwks)
            except (UsageError, RecursionError):  # our own keys unusable, or JSON nested beyond reason
                problem = "This input could not be checked: it is not a receipt or a bundle this verifier can read."
            if report is not None:
                checks = _check_rows(report)
                notes = list(report.notes)
            db.session.commit()  # end the read before the audit entry's own transaction
            audit.record_now(**audit.actor_of(current_user), action="receipt_verify", target=request.url_rule.rule,
                             details={"input": how, "valid": bool(report and report.valid)})
    status = 400 if (problem and report is None) or form.errors else 200
    form.receipt.data = ""  # never echo the input: a bundle's owner proof names the person
    return render_template("auditor/verify.html", form=form, report=report, problem=problem, checks=checks,
                           notes=notes, max_kib=MAX_VERIFY_BYTES // 1024, claims=_claims(report)), status


def _with_log_proof(data: str | bytes, report, jwks: dict):
    """A bare receipt carries no log proof, but this service holds the log: check the receipt's leaf against
    the latest signed checkpoint, as the person's bundle would. The proof is checked, not trusted."""
    if report.checks.get("log_inclusion") is not None or not isinstance(data, str):
        return report
    logged = in_log(db.session, data, report)
    if logged is None:
        return report
    with_proof = verify(issue.bundle(db.session, logged), jwks, _log_key_text())
    with_proof.notes[:] = [n for n in with_proof.notes if not n.startswith("no log proof")]
    with_proof.notes.append("the log proof was taken from this service's log and checked against its signed "
                            "checkpoint")
    return with_proof


def _check_rows(report) -> list[tuple[str, str, str]]:
    """(plain words, Passed|Failed|Not checked, why) for each check, in the verifier's order."""
    why: dict[str, str] = {}
    for problem in report.problems:
        name, _, text = problem.partition(": ")
        why.setdefault(name, text)
    rows = []
    for name in CHECKS:
        result = report.checks.get(name)
        word = {True: "Passed", False: "Failed", None: "Not checked"}[result]
        detail = why.get(name, "")
        if result is None:
            detail = {"log_inclusion": "A bare receipt carries no log proof; a bundle does.",
                      "checkpoint_signature": "There was no checkpoint to check.",
                      "owner": "No owner proof was given; only the person's own bundle has one.",
                      }.get(name, "It could not be checked, because an earlier check failed.")
        rows.append((CHECK_WORDS[name], word, detail))
    return rows


def _claims(report) -> list[tuple[str, str | None]]:
    """What a valid receipt says, in words. Only a verified receipt's claims are shown."""
    if report is None or not report.valid:
        return []
    c = report.claims or {}
    revocations = ", ".join(f"{r.get('network')}: {r.get('outcome')}" for r in c.get("revocations", [])) or "none"
    purged = ", ".join(f"{p.get('rows')} {p.get('category')} ({p.get('store')})" for p in c.get("purged", [])) or "none"
    return [("Receipt id", c.get("receipt_id")), ("Issued by", c.get("iss")), ("Request id", c.get("request_id")),
            ("Scope", "everything" if c.get("scope") == "all" else f"one network ({c.get('scope')})"),
            ("Requested", c.get("requested_at")), ("Deadline", c.get("deadline")),
            ("Completed", c.get("completed_at")), ("Revocations", revocations), ("Deleted", purged),
            ("Rows left after the purge", str(c.get("residual_rows"))),
            ("Waiting period to come back", f"{(c.get('reentry') or {}).get('waiting_period_days')} days")]


# --- checkpoints and consistency ---------------------------------------------------------------------

def _int_arg(name: str, low: int = 1, high: int = 2**31 - 1) -> int | None:
    """A tree size from the query string; the column holds 32-bit integers, so larger ones are refused here."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not low <= int(raw) <= high:
        abort(400, f"{name} must be a whole number from {low} up.")
    return int(raw)


@bp.get("/checkpoints")
def checkpoints():
    before = _int_arg("before")
    stmt = select(Checkpoint.tree_size, Checkpoint.root, Checkpoint.signed_at).order_by(Checkpoint.tree_size.desc())
    if before is not None:
        stmt = stmt.where(Checkpoint.tree_size < before)
    rows = db.session.execute(stmt.limit(CHECKPOINT_PAGE + 1)).all()
    more = len(rows) > CHECKPOINT_PAGE
    rows = rows[:CHECKPOINT_PAGE]
    latest = tlog.latest_checkpoint(db.session)
    return render_template("auditor/checkpoints.html", rows=rows, latest=latest, log_key=_log_key_text(),
                           first_page=before is None,
                           next_url=url_for(".checkpoints", before=rows[-1].tree_size) if more and rows else None)


@bp.get("/consistency")
def consistency():
    first, second = _int_arg("first"), _int_arg("second")
    if first is None or second is None:
        abort(400, "Choose two tree sizes: first and second.")
    if first > second:
        first, second = second, first
    older, newer = db.session.get(Checkpoint, first), db.session.get(Checkpoint, second)
    missing = [size for size, cp in ((first, older), (second, newer)) if cp is None]
    if missing:
        abort(404, "The log signed no checkpoint of size " + " or ".join(str(m) for m in missing) + ".")
    key_text = _log_key_text()
    signatures = [(cp.tree_size, _signed(cp, key_text)) for cp in (older, newer)]
    try:
        proof = tlog.consistency(db.session, first, second)
    except tlog.LogError as exc:
        abort(400, str(exc))
    trace = log_trace.trace_consistency(first, second, older.root, newer.root, proof)
    db.session.commit()  # end the read before the audit entry's own transaction
    audit.record_now(**audit.actor_of(current_user), action="log_consistency_check", target=request.url_rule.rule,
                     details={"first": first, "second": second, "consistent": trace.consistent})
    return render_template("auditor/consistency.html", older=older, newer=newer, trace=trace, signatures=signatures,
                           proof=[log_trace.b64(h) for h in proof], log_key=key_text)


def _signed(checkpoint: Checkpoint, key_text: str | None) -> str:
    """Whether the checkpoint's note verifies with the log key and says what the stored row says."""
    if key_text is None:
        return "No log key to check it with."
    try:
        opened = note.open_checkpoint(checkpoint.note, key_text)
    except note.NoteError as exc:
        return f"NOT signed by the log key: {exc}"
    if opened.size != checkpoint.tree_size or opened.root != checkpoint.root:
        return "Signed, but it names a different size or root than the log's record of it."
    return "Signed by the log key; the note's size and root are the ones used below."


# --- the export ----------------------------------------------------------------------------------

def _date_arg(name: str) -> dt.datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        abort(400, f"{name} must be a date, as YYYY-MM-DD.")
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@bp.get("/export.<fmt>")
def export(fmt: str):
    """Every request's timings against its deadline, streamed: no personal data, no id but the request's."""
    if fmt not in ("csv", "json"):
        abort(404, "The export is offered as .csv or .json.")
    since, until = _date_arg("since"), _date_arg("until")
    if until is not None:
        until += dt.timedelta(days=1)  # "until" names the last day included
    now = utcnow()
    db.session.commit()  # end the read of the sign-in before the audit entry's own transaction
    rule = request.url_rule.rule if request.url_rule is not None else None
    audit.record_now(**audit.actor_of(current_user), action="requests_export", target=rule,
                     details={"format": fmt, "since": request.args.get("since") or None,
                              "until": request.args.get("until") or None})
    rows = _rows(db.sessionmaker, now, since, until)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    body = _csv(rows) if fmt == "csv" else _json(rows, now, current_app.config["ERASURE_DEADLINE_DAYS"])
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="ownstory-requests-{stamp}.{fmt}"',
        "Cache-Control": "no-store"})


def _rows(sessionmaker, now: dt.datetime, since: dt.datetime | None, until: dt.datetime | None):
    """The rows, read in a session of the stream's own: the request's is closed before the body is sent."""
    with sessionmaker() as session:
        yield from queries.export_rows(session, now, since, until)


def _csv(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=queries.EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for n, row in enumerate(rows, start=1):
        writer.writerow({**row, "met_deadline": {True: "yes", False: "no", None: ""}[row["met_deadline"]],
                         "seconds_to_complete": "" if row["seconds_to_complete"] is None
                         else row["seconds_to_complete"]})
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json(rows, now: dt.datetime, deadline_days: int):
    head = {"generated_at": iso_utc(now), "deadline_days": deadline_days,
            "fields": list(queries.EXPORT_FIELDS)}
    yield json.dumps(head)[:-1] + ', "requests": ['
    chunk: list[str] = []
    first = True
    for row in rows:
        chunk.append(("\n" if first else ",\n") + json.dumps(row))
        first = False
        if len(chunk) >= 500:
            yield "".join(chunk)
            chunk = []
    yield "".join(chunk) + "\n]}\n"
