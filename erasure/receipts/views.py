"""The receipt page: what was done, in plain words, with the bundle to download and check."""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from flask import Blueprint, abort, current_app, render_template, request
from werkzeug.wrappers import Response

from app.extensions import db
from app.text import counted
from erasure.agents.service import agent_of_optout
from erasure.models import OptOutRequest, Receipt
from erasure.optout import wording
from erasure.optout.service import find_request
from erasure.receipts import issue
from erasure.verifier import owner

bp = Blueprint("receipt_pages", __name__)
# What the receipt keeps, as a person reads it; the signed words stay as they are, for experts.
PLAIN_RETAINED = {"suppression entry": "An entry on the do-not-collect list",
                  "consent withdrawal": "The record that you withdrew your consent",
                  "this request's record": "The record of this request"}


def _found(receipt_id: str) -> Receipt:
    try:
        receipt_id = str(uuid.UUID(receipt_id))
    except ValueError:
        abort(404, "There is no receipt at this address.")
    receipt = db.session.get(Receipt, receipt_id)
    if receipt is None:
        abort(404, "There is no receipt at this address.")
    return receipt


def _owner_secret(receipt: Receipt) -> bytes | None:
    """k, if the visitor holds the request's link; otherwise None (the bundle then has no owner proof)."""
    k_text = request.args.get("k")
    if not k_text:
        return None
    if find_request(db.session, receipt.request_id, k_text) is None:
        abort(404, "That link does not belong to this receipt.")
    return owner.parse_secret(k_text)


def summary(claims: dict, networks, kinds: Mapping[str, str] | None = None) -> str:
    """One paragraph a person reads: what we did, and when; and what each of the platform's own services
    (http stores, by `kinds`) confirmed it deleted."""
    done = issue.parse_time(claims["completed_at"])
    kinds = kinds or {}
    parts = []
    revoked = [networks[r["network"]].name if r["network"] in networks else r["network"]
               for r in claims["revocations"] if r["outcome"] in ("revoked", "already_invalid")]
    manual = [networks[r["network"]].name if r["network"] in networks else r["network"]
              for r in claims["revocations"] if r["outcome"] == "manual"]
    if revoked:
        parts.append("revoked our access at " + _join(revoked))
    deleted: list[str] = []
    confirmed: dict[str, list[tuple[str, int]]] = {}  # by a service: its store, and what it deleted
    for p in claims["purged"]:
        if p["rows"] and kinds.get(p["store"]) == "http":
            confirmed.setdefault(p["store"], []).append((p["category"], p["rows"]))
        elif p["rows"]:
            deleted.append(counted(p["rows"], p["category"]))
    if deleted:
        parts.append("deleted " + _join(deleted))
    elif not confirmed:
        parts.append("found no rows of yours to delete")
    services = [wording.service_confirmed(store, found) + "." for store, found in confirmed.items()]
    when = f"On {done:%-d %B %Y} at {done:%H:%M} UTC"
    if parts:
        text = " ".join([f"{when} we {' and '.join(parts)}.", *services])
    else:  # only services deleted something: they say so
        text = f"{when}, " + " ".join(services)
    if manual:
        text += f" {_join(manual)} offered no way for us to revoke access, so we destroyed our copy of the tokens."
    return text


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@bp.get("/receipts/<receipt_id>")
def receipt_page(receipt_id: str):
    receipt = _found(receipt_id)
    k = _owner_secret(receipt)
    claims = issue.claims_of(receipt)
    deleted: dict[str, int] = {}
    for p in claims["purged"]:
        if p["rows"]:
            deleted[p["category"]] = deleted.get(p["category"], 0) + p["rows"]
    return render_template("receipt.html", receipt=receipt, claims=claims, k=request.args.get("k") if k else None,
                           deleted=list(deleted.items()), plain_retained=PLAIN_RETAINED,
                           summary=summary(claims, current_app.extensions["networks"],
                                           wording.store_kinds(current_app.extensions["datamap"])),
                           base_url=current_app.config["BASE_URL"],
                           agent_id=agent_of_optout(db.session, receipt.request_id))


@bp.get("/receipts/<receipt_id>/bundle.json")
def bundle_download(receipt_id: str):
    receipt = _found(receipt_id)
    k = _owner_secret(receipt)
    box = db.session.get_one(OptOutRequest, receipt.request_id).owner_box if k else None
    body = json.dumps(issue.bundle(db.session, receipt, k, box), indent=2)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="ownstory-receipt-{receipt.id}.json"',
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
