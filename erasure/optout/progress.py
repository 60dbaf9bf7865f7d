"""An opt-out's progress as a person follows it: the steps grouped by what they care about, for the
status page and its JSON twin (which the page's script polls to update itself in place)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.text import counted, datetime_text
from erasure.models import ErasureStep, OptOutRequest, RequestStatus, StepKind, StepStatus
from erasure.optout import wording
from erasure.optout.service import second_pass

# The worst state a group's steps are in names the group's state: one retrying step is the news.
_WORST_FIRST = (StepStatus.NEEDS_ATTENTION, StepStatus.RETRYING, StepStatus.RUNNING)


@dataclass
class Group:
    key: str  # stable across polls: the script finds the group's element by it
    title: str
    status: str  # a StepStatus value
    outcome: str
    steps: list[dict] = field(default_factory=list)  # {"id", "title", "status", "outcome"}, folded under it
    folded: bool = True  # the steps show only when the person unfolds them


def _step(step: ErasureStep, networks, kinds, now: dt.datetime, late_while_revoking: bool = False,
          revoking: bool = False) -> dict:
    return {"id": step.id, "title": wording.step_title(step, networks, kinds, late_while_revoking),
            "status": str(step.status),
            "outcome": wording.step_outcome(step, now, kinds, networks, late_while_revoking, revoking)}


def _status(steps: list[dict]) -> str:
    statuses = {s["status"] for s in steps}
    if statuses == {StepStatus.DONE}:
        return StepStatus.DONE
    for status in _WORST_FIRST:
        if status in statuses:
            return status
    return StepStatus.RUNNING if StepStatus.DONE in statuses else StepStatus.PENDING


def _fold(key: str, title: str, steps: list[dict], done_words: str, held: frozenset[str] = frozenset()) -> Group:
    """`held`: the ids of steps a network or a service asked to wait (wording.asked_to_wait)."""
    status = _status(steps)
    done = sum(s["status"] == StepStatus.DONE for s in steps)
    if status == StepStatus.DONE:
        outcome = done_words
    else:  # the step holding the group up speaks for it, in its own words
        stuck = next((s for s in steps if s["status"] in (StepStatus.NEEDS_ATTENTION, StepStatus.RETRYING)),
                     next((s for s in steps if s["id"] in held), None))
        outcome = f"{done} of {len(steps)} done." + (f" {stuck['title']}: {stuck['outcome']}" if stuck else "")
    return Group(key=key, title=title, status=status, outcome=outcome, steps=steps)


def groups(steps: list[ErasureStep], networks, kinds: Mapping[str, str] | None, now: dt.datetime) -> list[Group]:
    """Access revoked at each network, data deleted, checked, receipt signed; the rest folded last."""
    revokes = any(s.kind == StepKind.REVOKE for s in steps)
    revoking = any(s.kind == StepKind.REVOKE and s.status != StepStatus.DONE for s in steps)
    # Verify's late rows came in while access was being revoked, unless a second pass (a request laid with one)
    # looked at the stores after that.
    late_while_revoking = revokes and not any(second_pass(s) for s in steps)

    def one(s: ErasureStep) -> dict:
        return _step(s, networks, kinds, now, late_while_revoking, revoking)

    out: list[Group] = []
    for s in steps:
        if s.kind == StepKind.REVOKE:
            shown = one(s)
            out.append(Group(key=f"revoke-{s.target}", title=shown["title"], status=shown["status"],
                             outcome=shown["outcome"], steps=[shown], folded=False))
    # What waits for the revocations (Ownstory's own records, which the revocations need, and, in a request
    # laid with one, the second purge pass) is a group of its own, so that "Delete your data" is done while a
    # network is down. Verify, which looks at every store again once access is revoked, shows on its own.
    later = [s for s in steps if second_pass(s) or (revokes and s.kind == StepKind.FORGET)]
    deleting = [s for s in steps if s.kind in (StepKind.PURGE, StepKind.FORGET) and s not in later]
    if deleting:
        held = frozenset(s.id for s in deleting if wording.asked_to_wait(s, now))
        out.append(_fold("delete", "Delete your data", [one(s) for s in deleting], _deleted_words(deleting), held))
    if any(second_pass(s) for s in later):
        out.append(_fold("after-revocation", "Once access is revoked everywhere: delete anything that came in "
                         "meanwhile, and our own records of you", [one(s) for s in later],
                         _deleted_words(later, nothing="Nothing new came in")))
    elif later:
        out.append(_fold("after-revocation", "Once access is revoked everywhere: delete our own records of you",
                         [one(s) for s in later], "Ownstory's own records of you are deleted."))
    for kind in (StepKind.VERIFY, StepKind.RECEIPT):
        for s in steps:
            if s.kind == kind:
                shown = one(s)
                out.append(Group(key=str(kind), title=shown["title"], status=shown["status"],
                                 outcome=shown["outcome"], steps=[shown], folded=False))
    rest = [one(s) for s in steps
            if s.kind not in (StepKind.REVOKE, StepKind.PURGE, StepKind.FORGET, StepKind.VERIFY, StepKind.RECEIPT)]
    if rest:
        out.append(_fold("other", "Other steps", rest, "Done."))
    return out


def _deleted_words(steps: list[ErasureStep], nothing: str = "Nothing of yours was found to delete") -> str:
    """"Deleted 1 profile entry, 20 posts and 2 invoices, and Ownstory's own records of you."."""
    totals: dict[str, int] = {}
    for s in steps:
        if s.kind != StepKind.PURGE:
            continue
        result = s.result or {}
        # a store's step counts each category; a step laid per entry (before) counts one
        counts = wording.purged_counts(result) or [(s.target.partition("/")[2], result.get("rows", 0))]
        for category, n in counts:
            if n:
                totals[category] = totals.get(category, 0) + n
    parts = [counted(n, category) for category, n in totals.items()]
    text = "Deleted " + _join(parts) if parts else nothing
    if any(s.kind == StepKind.FORGET for s in steps):
        text += ", and Ownstory's own records of you" if parts else "; Ownstory's own records of you are deleted"
    return text + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def counted_steps(steps: list[ErasureStep]) -> str:
    """"7 of 11 steps done": what the live region says."""
    done = sum(s.status == StepStatus.DONE for s in steps)
    return f"{done} of {len(steps)} step{'s' if len(steps) != 1 else ''} done"


def as_json(request: OptOutRequest, steps: list[ErasureStep], networks, kinds, now: dt.datetime) -> dict:
    return {
        "status": str(request.status),
        "state": wording.request_state(request),
        "progress": counted_steps(steps),
        "completed": request.status == RequestStatus.COMPLETED,
        "finished": datetime_text(request.completed_at) if request.completed_at else None,
        "receipt_id": request.receipt_id,
        "groups": [{"key": g.key, "title": g.title, "status": g.status, "outcome": g.outcome,
                    "folded": g.folded, "steps": g.steps} for g in groups(steps, networks, kinds, now)],
    }
