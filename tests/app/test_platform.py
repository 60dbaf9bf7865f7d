"""The platform is named: OWNSTORY_PLATFORM_NAME and OWNSTORY_PLATFORM_CONTACT on the home page and in mail."""
from email import policy
from email.parser import BytesParser

import pytest

from app import settings
from app.mail import Mailer, signed
from app.settings import ConfigError
from tests.app.test_settings import SECRETS


def test_the_platform_has_a_name_by_default_and_no_contact(tmp_path):
    cfg = settings.load(dict(SECRETS), instance_path=tmp_path)
    assert (cfg["PLATFORM_NAME"], cfg["PLATFORM_CONTACT"]) == ("Example Platform", "")


@pytest.mark.parametrize("contact", ["privacy@skyline.example", "https://skyline.example/privacy"])
def test_the_operator_names_the_platform_and_where_to_ask_it(tmp_path, contact):
    cfg = settings.load({**SECRETS, "OWNSTORY_PLATFORM_NAME": "  Skyline  Influence ",
                         "OWNSTORY_PLATFORM_CONTACT": contact}, instance_path=tmp_path)
    assert (cfg["PLATFORM_NAME"], cfg["PLATFORM_CONTACT"]) == ("Skyline Influence", contact)


@pytest.mark.parametrize("name, value", [("OWNSTORY_PLATFORM_NAME", " "), ("OWNSTORY_PLATFORM_NAME", "x" * 81),
                                         ("OWNSTORY_PLATFORM_CONTACT", "call us"),
                                         ("OWNSTORY_PLATFORM_CONTACT", "ftp://skyline.example"),
                                         ("OWNSTORY_PLATFORM_CONTACT", "a@b")])
def test_a_bad_name_or_contact_names_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as err:
        settings.load({**SECRETS, name: value}, instance_path=tmp_path)
    assert err.value.field == name


def test_the_home_page_names_the_platform_and_links_its_contact(make_app):
    app = make_app(platform_name="Skyline Influence", platform_contact="privacy@skyline.example")
    page = app.test_client().get("/").get_data(as_text=True)
    assert "<h1>Your data at Skyline Influence, your say</h1>" in page
    assert "which of your networks Skyline Influence can reach" in page
    assert '<a href="mailto:privacy@skyline.example">privacy@skyline.example</a>' in page


def test_every_mail_says_whose_it_is(tmp_path):
    sender, footer = signed("Skyline Influence", "privacy@skyline.example")
    Mailer("", tmp_path, sender, footer).send("person@example.org", "Your opt-out is under way", "We received it.")
    (path,) = tmp_path.glob("*.eml")
    mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert mail["From"] == "Skyline Influence via Ownstory <no-reply@ownstory.invalid>"
    body = mail.get_content()
    assert body.startswith("We received it.\n") and body.rstrip().endswith(
        "Skyline Influence, through Ownstory\nQuestions: privacy@skyline.example")


def test_a_name_cannot_inject_a_mail_header(tmp_path):
    sender, footer = signed('Evil" <x@evil.example>, "Bcc', "")
    Mailer("", tmp_path, sender, footer).send("person@example.org", "Hello", "Body")
    (path,) = tmp_path.glob("*.eml")
    mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert mail["From"].addresses[0].addr_spec == "no-reply@ownstory.invalid" and len(mail["From"].addresses) == 1
