"""The words of the mails a leaving person gets: the status link at once, the outcome at the end."""
from __future__ import annotations

from app.text import date_text
from erasure.models import OptOutRequest

COME_BACK = "You can come back at any time, starting now. Nothing about leaving is held against you."


def submitted(request: OptOutRequest, status_url: str) -> tuple[str, str]:
    what = "everything" if request.scope == "all" else f"the network {request.scope}"
    body = f"""We received your request to leave {what}.

Your consent stopped counting the moment you asked. We are now revoking our access at the
networks for you and deleting your data. All of it will be done by {date_text(request.deadline)} at the latest;
most of it takes minutes.

Follow every step here (this link is yours alone; anyone who has it can see the status):
{status_url}

{COME_BACK}
"""
    return "Your opt-out is under way", body


def outcome(request: OptOutRequest, base_url: str) -> tuple[str, str]:
    body = f"""Your opt-out is done.

We revoked our access at the networks you connected and deleted your data wherever the
platform kept it, and checked that nothing is left. Request: {request.id}

Your signed deletion receipt, which anyone can check:
{base_url}/receipts/{request.receipt_id}

{COME_BACK}
"""
    return "Your opt-out is complete", body
