"""Signing in while others write, on a live server: every answer is a page of ours, never a server error."""
import pytest

from tests.helpers_crowd import Person, Tally, connected, consent_boxes, crowd, saving_consents, signing_in

pytestmark = pytest.mark.slow

SECONDS = 8


def test_signing_in_while_others_save_consents_never_fails(live_app, make_person):
    app, base = live_app
    boxes = consent_boxes(app)
    tally = Tally()
    jobs = []
    for i in range(4):
        jobs.append(signing_in(Person(base, make_person().email), tally))
        saver = make_person()
        connected(app, saver, str(5000 + i))
        jobs.append(saving_consents(Person(base, saver.email), tally, boxes))
    crowd(jobs, SECONDS)
    assert tally.server_errors() == []
    assert tally.done("sign in", 302) >= 8 and tally.done("save consents", 302) >= 8
