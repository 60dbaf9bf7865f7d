"""The opt-out form: what to leave, an optional neutral reason, and whether the platform may say so."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # new in WTForms 3.3; the stubs are 3.2
from wtforms.validators import Length, Optional

from erasure.optout import service
from erasure.optout.service import REASONS


def choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class OptOutForm(FlaskForm):
    scope = SelectField("What to leave", validate_choice=True)
    reason = RadioField("Why (optional)", choices=choices([("", "I'd rather not say"), *REASONS.items()]), default="",
                        validators=[Optional()], validate_choice=True)
    reason_text = TextAreaField("Anything you want to add (optional)",
                                validators=[Optional(), Length(max=service.MAX_REASON_TEXT)])
    public_status = RadioField(
        "If the platform looks you up after you leave",
        # Private by default: saying someone left is for them to allow, never assumed.
        choices=choices([("no", "It may only say nothing is held"),
                          ("yes", 'It may say "this person chose to opt out"')]),
        default="no", validate_choice=True)
