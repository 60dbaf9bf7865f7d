"""The opt-out page follows the choice (everything, or one network), and the status page answers it."""
from __future__ import annotations

import re

from tests.erasure.helpers_optout import joined_person, outbox, submit_optout

EVERYTHING = "Delete everything and close my account"
PARTNERS_KEEP = "stays with them for up to 12 months"


def test_everything_says_it_closes_the_account_before_the_button(client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1001")
    page = client.get("/optout").get_data(as_text=True)
    form = page[page.index("<form"):]
    assert form.index("This signs you out now and closes your Ownstory account") < form.index(
        f'<button type="submit" class="leave">{EVERYTHING}</button>')
    assert "Leave Demo Social</button>" not in page
    assert '<a href="/optout?scope=demo">Only Demo Social</a>' in page
    assert PARTNERS_KEEP not in page  # scoring keeps nothing elsewhere: nothing to warn about


def test_one_network_keeps_the_account_and_says_so(client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1002")
    page = client.get("/optout?scope=demo").get_data(as_text=True)
    assert '<button type="submit" class="leave">Leave Demo Social</button>' in page
    assert "Your Ownstory account stays, and so do your other networks." in page
    assert "closes your Ownstory account" not in page and EVERYTHING not in page
    assert '<input type="hidden" name="scope" value="demo">' in page
    assert f'class="leave">{EVERYTHING}<' in client.get("/optout?scope=nowhere").get_data(as_text=True)  # unknown


def test_what_partners_keep_is_said_before_leaving(client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1003")
    csrf_post(client, "/consents", {"consent:demo:partner_sharing": "on"})
    for path in ("/optout", "/optout?scope=demo"):
        page = client.get(path).get_data(as_text=True)
        assert page.index(PARTNERS_KEEP) < page.index('class="leave"'), path
        assert "we cannot recall it" in page


def test_after_everything_the_status_page_says_the_account_is_closed(app, client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1004")
    status = client.get(submit_optout(client, csrf_post, "all")).get_data(as_text=True)
    main = status[status.index("<main"):]
    assert re.search(r"<h1>Your opt-out</h1>\s*<p class=\"lead\"><strong>Your account is closed.</strong>", main)
    assert "We have emailed you this link." in main and "it is the only way" not in main
    assert '<button type="button" class="copy-link" hidden>Copy link</button>' in main
    (mail,) = outbox(app)
    link = re.search(r'id="status-link" type="text" readonly value="([^"]+)"', main).group(1)
    assert link.replace("&amp;", "&") in mail.get_content()


def test_after_one_network_the_status_page_offers_to_connect_again(client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1005")
    status = client.get(submit_optout(client, csrf_post, "demo")).get_data(as_text=True)
    assert '<a href="/me">Connect Demo Social again</a> whenever you like' in status
    assert "Your account is closed" not in status and "Sign up</a>" not in status[status.index("<main"):]
