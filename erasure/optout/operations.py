"""What operators may do to an opt-out: nothing but make its stuck steps try again now."""
from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from app.db import write_lock
from erasure.models import FAILING_STEPS, ErasureStep, OptOutRequest, StepStatus


def retry_now(session: Session, request: OptOutRequest, now: dt.datetime) -> int:
    """Make the steps that need attention or are waiting to retry due now. The caller commits."""
    write_lock(session)
    count = cast(CursorResult[Any], session.execute(
        update(ErasureStep)
        .where(ErasureStep.request_id == request.id, ErasureStep.status.in_(FAILING_STEPS))
        .values(status=StepStatus.RETRYING, not_before=now)
        .execution_options(synchronize_session=False)
    )).rowcount
    session.expire(request)
    return count
