"""Plain words for an opt-out's steps and states, as the person reads them on the status page."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from app.text import counted, date_text, datetime_text
from erasure.models import FAILING_STEPS, ErasureStep, OptOutRequest, RequestStatus, StepKind, StepStatus
from erasure.optout.service import second_pass

REQUEST_STATES: dict[str, str] = {
    RequestStatus.RECEIVED: "Received: the work starts within moments.",
    RequestStatus.IN_PROGRESS: "In progress.",
    RequestStatus.COMPLETED: "Done.",
    RequestStatus.NEEDS_ATTENTION: "Still working: a step is taking longer than it should. We keep retrying, "
                                   "and our operators can see it. Nothing is dropped.",
}


def store_kinds(datamap) -> dict[str, str]:
    """Each store's kind by its name, for the words below: a service (http) deletes for us, and says so."""
    return {store.name: getattr(store, "kind", "sql") for store in datamap.stores}


def service_name(store: str) -> str:
    """An http store as a person reads it: the store "billing" is the Billing service."""
    words = store.replace("_", " ").replace("-", " ").strip()
    name = words[:1].upper() + words[1:]
    return name if name.lower().endswith("service") else f"{name} service"


def service_confirmed(store: str, deleted: list[tuple[str, int]]) -> str:
    """"Billing service confirmed 2 invoices deleted": what a service said it deleted, category by category."""
    return f"{service_name(store)} confirmed {_join([counted(n, category) for category, n in deleted])} deleted"


def purged_counts(result: dict) -> list[tuple[str, int]]:
    """A store's purge step's rows by category, in the data map's order (two entries may share a category)."""
    counts: dict[str, int] = {}
    for part in result.get("categories", []):
        counts[part["category"]] = counts.get(part["category"], 0) + int(part.get("rows", 0))
    return list(counts.items())


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def network_name(networks, key: str) -> str:
    return networks[key].name if key in networks else key


def step_title(step: ErasureStep, networks, kinds: Mapping[str, str] | None = None,
               late_while_revoking: bool = False) -> str:
    """`late_while_revoking`: verify is the first look at the stores once the request's revocations are
    confirmed, so what it finds came in while access was being revoked."""
    if step.kind == StepKind.REVOKE:
        return f"Revoke our access at {network_name(networks, step.target)}"
    if step.kind == StepKind.PURGE:
        store, _, category = step.target.partition("/")
        what = _join((step.params or {}).get("categories") or [category])  # a store's, or one (laid before)
        if second_pass(step):
            where = f" (at the {service_name(store)})" if (kinds or {}).get(store) == "http" else ""
            return f"Once access is revoked, delete any {what} that came in meanwhile{where}"
        if (kinds or {}).get(store) == "http":
            return f"Have the {service_name(store)} delete your {what}"
        return f"Delete your {what}"
    if step.kind == StepKind.FORGET:
        return "Delete Ownstory's own records of you"
    if step.kind == StepKind.VERIFY:
        return f"Check every store again, and delete anything that came in {_meanwhile(late_while_revoking)}"
    if step.kind == StepKind.RECEIPT:
        return "Sign your deletion receipt"
    return "Mail you the outcome"


def _meanwhile(late_while_revoking: bool) -> str:
    """When verify's late rows came in: while a token still let them in, or since the stores were purged."""
    return "while access was being revoked" if late_while_revoking else "meanwhile"


def asked_to_wait(step: ErasureStep, now: dt.datetime) -> bool:
    """A step not tried yet because its network, or its service, asked every caller to wait (erasure.engine.queue.hold):
    the only way a revocation or a purge that never failed is due later than now."""
    return (step.kind in (StepKind.REVOKE, StepKind.PURGE) and step.status == StepStatus.PENDING
            and step.not_before is not None and step.not_before > now)


def step_outcome(step: ErasureStep, now: dt.datetime, kinds: Mapping[str, str] | None = None,
                 networks=None, late_while_revoking: bool = False, revoking: bool = False) -> str:
    """`late_while_revoking`: as for step_title; `revoking`: a revocation of the request is not confirmed yet."""
    r = step.result or {}
    if step.kind == StepKind.REVOKE and step.status in FAILING_STEPS:
        return revocation_pending(step, network_name(networks or {}, step.target))
    if asked_to_wait(step, now):
        who = (network_name(networks or {}, step.target) if step.kind == StepKind.REVOKE
               else service_name(step.target.partition("/")[0]))
        return (f"{who} asked us to wait a little; we try again {_in_about(step.not_before, now)} and will "
                f"finish by {date_text(step.request.deadline)}.")
    if step.status == StepStatus.DONE:
        if step.kind == StepKind.REVOKE:
            if r.get("outcome") == "manual":
                return ("This network offers no way for us to revoke access. "
                        f"Please remove it here: {r.get('manual_url')}")
            if r.get("outcome") == "already_invalid":
                return f"The network had already ended our access ({datetime_text(step.done_at)})."
            return f"Revoked, confirmed by the network ({datetime_text(step.done_at)})."
        if step.kind == StepKind.PURGE:
            rows = r.get("rows", 0)
            store, _, category = step.target.partition("/")
            counts = purged_counts(r) or [(category, rows)]
            if (kinds or {}).get(store) == "http":
                return f"{service_confirmed(store, counts)} ({datetime_text(step.done_at)})."
            return f"Deleted {_join([counted(n, c) for c, n in counts])} ({datetime_text(step.done_at)})."
        if step.kind == StepKind.FORGET:
            return f"Deleted ({datetime_text(step.done_at)})."
        if step.kind == StepKind.VERIFY:
            late = purged_counts({"categories": r.get("late_rows", [])})
            if not any(n for _c, n in late):
                return "Nothing is left."
            return (f"Nothing is left: deleted {_join([counted(n, c) for c, n in late if n])} that came in "
                    f"{_meanwhile(late_while_revoking)}.")
        if step.kind == StepKind.RECEIPT:
            return f"Signed and listed in the public log ({datetime_text(step.done_at)})."
        return f"Done ({datetime_text(step.done_at)})."
    if step.status == StepStatus.RUNNING:
        return "Working on it now."
    if step.status == StepStatus.PENDING:
        # Only the first purge runs alongside the revocations; every other step waits for them.
        waits = second_pass(step) or (revoking and step.kind not in (StepKind.REVOKE, StepKind.PURGE))
        return "Waiting until access is revoked everywhere." if waits else "Waiting its turn."
    why = step.last_error or "it did not succeed yet"
    retry = _in_about(step.not_before, now)
    if step.status == StepStatus.NEEDS_ATTENTION:
        return (f"Not done yet: {why}. We keep retrying automatically (next try {retry}), "
                "and our operators have been alerted.")
    return f"Not done yet: {why}. Retrying {retry}."


def _in_about(when: dt.datetime | None, now: dt.datetime) -> str:
    wait = max(0, int((when - now).total_seconds())) if when else 0
    return "in a moment" if wait < 5 else f"in about {wait // 60 + 1} minute{'s' if wait >= 60 else ''}"


def revocation_pending(step: ErasureStep, name: str) -> str:
    """A revocation that has not gone through yet, in words: the network's answer (an HTTP status, an
    error code) is for the operators, who see it on their pages and in the API."""
    by = date_text(step.request.deadline)
    waiting = (step.result or {}).get("waiting")
    if waiting == "unanswered":
        return f"{name} is not answering; we keep trying and will finish by {by}."
    if waiting == "refused":
        return (f"{name} has not accepted our request yet; we keep trying, our operators are looking into it, "
                f"and we will finish by {by}.")
    return f"{name} has not confirmed yet; we keep trying and will finish by {by}."


def request_state(request: OptOutRequest) -> str:
    return REQUEST_STATES[request.status]
