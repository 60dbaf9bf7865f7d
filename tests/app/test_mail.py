"""Mail to people: what lands in the outbox reads back as it was written, whoever and whatever it names."""
from email import message_from_bytes, policy

from app.mail import Mailer, signed


def read(path) -> object:
    return message_from_bytes(path.read_bytes(), policy=policy.default)


def test_mails_read_back_with_their_names_subjects_and_text_intact(tmp_path):
    sender, footer = signed("Bücherwurm Social", "datenschutz@bücherwurm.example")
    mailer = Mailer("", tmp_path, sender, footer)
    first = mailer.send("zoë@example.org", "Your opt-out is done: Zoë, ça y est", "Ünïcode body.\nSecond line.")
    second = mailer.send("omar@example.org", "Plain subject", "Plain body.")

    mails = sorted(tmp_path.glob("*.eml"))
    assert len(mails) == 2
    one, two = (read(p) for p in mails)
    assert one["Message-ID"] == first and two["Message-ID"] == second
    assert one["From"].addresses[0].display_name == "Bücherwurm Social via Ownstory"
    assert (one["To"], one["Subject"]) == ("zoë@example.org", "Your opt-out is done: Zoë, ça y est")
    assert one.get_content().startswith("Ünïcode body.\nSecond line.\n\n-- \nBücherwurm Social, through Ownstory")
    assert (two["To"], two["Subject"], two["From"]) == ("omar@example.org", "Plain subject", one["From"])
    assert "Questions: datenschutz@bücherwurm.example" in two.get_content()
