"""Mail to people: SMTP when OWNSTORY_SMTP_URL is set, else .eml files in instance/outbox/."""
from __future__ import annotations

import logging
import smtplib
import time
import uuid
from email import headerregistry, policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)
SENDER = "Ownstory <no-reply@ownstory.invalid>"
ADDRESS = "no-reply@ownstory.invalid"


class _Headers(headerregistry.HeaderRegistry):
    """The standard header registry, making each header's class once: CPython's makes a new class for every
    header it sets, which is most of the CPU a mail costs. The mail's bytes are the same."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        made = self._made.get(name.lower())
        if made is None:
            made = self._made[name.lower()] = super().__getitem__(name)
        return made


POLICY = policy.default.clone(header_factory=_Headers())


class MailError(Exception):
    """Mail could not be handed over; the caller retries. Never names the recipient."""


def signed(platform: str, contact: str = "") -> tuple[str, str]:
    """The sender and the closing lines of every mail, naming the platform the person's data is with
    (OWNSTORY_PLATFORM_NAME) and where to ask it (OWNSTORY_PLATFORM_CONTACT), so that a mail from an
    address they never gave to Ownstory still says whose it is."""
    footer = f"{platform}, through Ownstory" + (f"\nQuestions: {contact}" if contact else "")
    return formataddr((f"{platform} via Ownstory", ADDRESS)), footer


class Mailer:
    def __init__(self, smtp_url: str, outbox: Path, sender: str = SENDER, footer: str = "") -> None:
        self.smtp_url, self.outbox, self.sender, self.footer = smtp_url, Path(outbox), sender, footer

    def send(self, to: str, subject: str, body: str) -> str:
        """Send one plain-text message; returns its Message-ID (safe to log)."""
        msg = EmailMessage(policy=POLICY)
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain="ownstory.invalid")
        msg.set_content(f"{body.rstrip()}\n\n-- \n{self.footer}\n" if self.footer else body)
        if self.smtp_url:
            self._smtp(msg)
        else:
            self.outbox.mkdir(parents=True, exist_ok=True)
            # Named by time first, so the outbox lists mail in the order it was sent.
            path = self.outbox / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
            path.write_bytes(bytes(msg))
            path.chmod(0o600)
        log.info("mail sent: %s", msg["Message-ID"])
        return msg["Message-ID"]

    def _smtp(self, msg: EmailMessage) -> None:
        url = urlsplit(self.smtp_url)
        port = url.port or (465 if url.scheme == "smtps" else 25)
        try:
            cls = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
            with cls(url.hostname or "localhost", port, timeout=20) as smtp:
                if url.scheme == "smtp+starttls":
                    smtp.starttls()
                if url.username:
                    smtp.login(unquote(url.username), unquote(url.password or ""))
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"the mail server did not take the message ({type(exc).__name__})") from None
