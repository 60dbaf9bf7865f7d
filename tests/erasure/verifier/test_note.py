"""Signed notes and checkpoints: the Go reference vectors, round trips, and every way to get them wrong."""
from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from erasure.verifier import note

# The vectors of golang.org/x/mod/sumdb/note (note_test.go: TestSign, TestOpen, TestNewVerifier), the
# reference implementation that C2SP signed-note documents. The signer key there is
# "PRIVATE+KEY+PeterNeumann+c74f20a3+" + base64(0x01 || Ed25519 seed).
PETER_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6K"
             "E6RyyBwJnAM=\n")
ENOCH_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1R"
             "vMc+QQ=\n")

ORIGIN = "ownstory.example/ownstory/receipts"
ROOT = hashlib.sha256(b"a root").digest()


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# --- the Go vectors -----------------------------------------------------------------------------

def test_signing_reproduces_the_go_vector_byte_for_byte():
    peter = Ed25519PrivateKey.from_private_bytes(PETER_SEED)
    assert note.sign_note(TEXT, "PeterNeumann", peter) == TEXT + "\n" + PETER_SIG
    assert note.verifier_key("PeterNeumann", peter.public_key()) == PETER_KEY
    assert note.key_id("PeterNeumann", peter.public_key().public_bytes_raw()).hex() == "c74f20a3"


def test_opening_the_go_vector():
    assert note.open_note(TEXT + "\n" + PETER_SIG, PETER_KEY) == TEXT
    # another key's signature is ignored, whichever key is asked for
    assert note.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, PETER_KEY) == TEXT
    assert note.open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, ENOCH_KEY) == TEXT
    with pytest.raises(note.NoteError, match="no signature by the key EnochRoot"):
        note.open_note(TEXT + "\n" + PETER_SIG, ENOCH_KEY)


def test_a_failing_signature_by_the_known_key_rejects_the_note():
    broken = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_note(TEXT + "\n" + broken, PETER_KEY)


@pytest.mark.parametrize("message", [
    TEXT,
    TEXT + "\n",
    TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + TEXT + "\n" + PETER_SIG,
    TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1],
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    TEXT + "\n" + PETER_SIG * 101,
    TEXT + "\n" + PETER_SIG.replace("\u2014", "-"),
    TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # unpadded base64
    TEXT.replace("\n", "\r\n") + "\r\n" + PETER_SIG,
    "\ud800" + TEXT + "\n" + PETER_SIG,  # not encodable as UTF-8
    "x" * (note.MAX_NOTE_BYTES + 1),
])
def test_malformed_notes_are_refused(message):
    with pytest.raises(note.NoteError):
        note.open_note(message, PETER_KEY)


def test_every_mangling_of_a_verifier_key_is_refused():
    note.parse_verifier_key(PETER_KEY)
    for i in range(len(PETER_KEY) + 1):
        for j in range(i + 1, len(PETER_KEY) + 1):
            if (i, j) != (0, len(PETER_KEY)):
                with pytest.raises(note.NoteError):
                    note.parse_verifier_key(PETER_KEY[i:j])
    for i in range(len(PETER_KEY)):
        mangled = PETER_KEY[:i] + chr(ord(PETER_KEY[i]) + 1) + PETER_KEY[i + 1:]
        with pytest.raises(note.NoteError):
            note.parse_verifier_key(mangled)


@pytest.mark.parametrize("key", [
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong length, right key ID
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm, right key ID
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "",
    "+++",
])
def test_go_bad_verifier_keys_are_refused(key):
    with pytest.raises(note.NoteError):
        note.parse_verifier_key(key)


def test_a_verifier_key_may_end_in_a_newline():
    assert str(note.parse_verifier_key(PETER_KEY + "\n")) == PETER_KEY


# --- checkpoints --------------------------------------------------------------------------------

def test_a_checkpoint_reads_exactly_as_c2sp_writes_it(log_key):
    body = note.checkpoint_body(ORIGIN, 9, ROOT)
    assert body == f"{ORIGIN}\n9\n{base64.b64encode(ROOT).decode()}\n"
    signed = note.sign_note(body, ORIGIN, log_key)
    assert signed.startswith(body + "\n\u2014 " + ORIGIN + " ")
    assert signed.endswith("\n") and signed.count("\n") == 5
    raw = base64.b64decode(signed.split(" ")[-1].rstrip("\n"), validate=True)
    public = log_key.public_key().public_bytes_raw()
    assert raw[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    log_key.public_key().verify(raw[4:], body.encode())
    key = note.verifier_key(ORIGIN, log_key.public_key())
    encoded_key = base64.b64encode(b"\x01" + public).decode()
    assert key == f"{ORIGIN}+{raw[:4].hex()}+{encoded_key}"
    assert note.open_checkpoint(signed, key) == note.Checkpoint(ORIGIN, 9, ROOT)


def test_an_empty_log_has_a_checkpoint(log_key):
    empty = hashlib.sha256(b"").digest()
    signed = note.sign_note(note.checkpoint_body(ORIGIN, 0, empty), ORIGIN, log_key)
    assert note.open_checkpoint(signed, note.verifier_key(ORIGIN, log_key.public_key())).size == 0


@pytest.mark.parametrize("tamper", [
    lambda s: s.replace("\n9\n", "\n10\n", 1),
    lambda s: s.replace(base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode()),
    lambda s: s.replace(ORIGIN + "\n", "elsewhere.example/log\n", 1),
    lambda s: "x" + s,
])
def test_a_tampered_checkpoint_is_refused(log_key, tamper):
    signed = note.sign_note(note.checkpoint_body(ORIGIN, 9, ROOT), ORIGIN, log_key)
    with pytest.raises(note.NoteError):
        note.open_checkpoint(tamper(signed), note.verifier_key(ORIGIN, log_key.public_key()))


def test_another_key_under_the_same_origin_is_refused(log_key):
    signed = note.sign_note(note.checkpoint_body(ORIGIN, 9, ROOT), ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(note.NoteError, match="no signature by the key"):
        note.open_checkpoint(signed, note.verifier_key(ORIGIN, log_key.public_key()))


def test_the_same_key_under_another_name_is_refused(log_key):
    signed = note.sign_note(note.checkpoint_body(ORIGIN, 9, ROOT), ORIGIN, log_key)
    with pytest.raises(note.NoteError, match="no signature by the key"):
        note.open_checkpoint(signed, note.verifier_key("other.example/log", log_key.public_key()))


def test_the_origin_must_be_the_key_name(log_key):
    """A log key must not vouch for another log's checkpoint, even one it signed."""
    signed = note.sign_note(note.checkpoint_body("other.example/log", 9, ROOT), ORIGIN, log_key)
    key = note.verifier_key(ORIGIN, log_key.public_key())
    assert note.open_note(signed, key).startswith("other.example/log\n")
    with pytest.raises(note.NoteError, match="origin"):
        note.open_checkpoint(signed, key)


def test_extra_signatures_by_witnesses_are_ignored(log_key):
    body = note.checkpoint_body(ORIGIN, 9, ROOT)
    signed = note.sign_note(body, ORIGIN, log_key)
    witness_line = note.sign_note(body, "witness.example/w1", Ed25519PrivateKey.generate()).rsplit("\n", 2)[1]
    cosigned = signed + witness_line + "\n"
    assert note.open_checkpoint(cosigned, note.verifier_key(ORIGIN, log_key.public_key())).size == 9


@pytest.mark.parametrize("body", [
    f"{ORIGIN}\n09\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n+9\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n 9\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n1_000\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n\u0663\n{base64.b64encode(ROOT).decode()}\n",  # an Arabic-Indic three
    f"{ORIGIN}\n{2**64}\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n9\n{base64.b64encode(ROOT[:31]).decode()}\n",
    f"{ORIGIN}\n9\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
    f"{ORIGIN}\n9\n{base64.urlsafe_b64encode(bytes([255]) * 32).decode()}\n",
    f"{ORIGIN}\n9\n{base64.b64encode(ROOT).decode()}",
    f"{ORIGIN}\n9\n",
    f"\n9\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n9\n{base64.b64encode(ROOT).decode()}\n\n",
])
def test_malformed_checkpoint_bodies_are_refused(body):
    with pytest.raises(note.NoteError):
        note.parse_checkpoint(body)


def test_extension_lines_are_kept_but_not_required():
    body = note.checkpoint_body(ORIGIN, 9, ROOT) + "extension\n"
    assert note.parse_checkpoint(body) == note.Checkpoint(ORIGIN, 9, ROOT, ("extension",))
    assert note.parse_checkpoint(body).body() == body


@pytest.mark.parametrize(("origin", "size", "root"), [
    ("has space", 1, ROOT), ("has+plus", 1, ROOT), ("", 1, ROOT), ("line\nbreak", 1, ROOT),
    (ORIGIN, -1, ROOT), (ORIGIN, True, ROOT), (ORIGIN, 2**64, ROOT), (ORIGIN, 1, ROOT[:31]), (ORIGIN, 1, "root"),
])
def test_checkpoint_body_refuses_what_it_cannot_write(origin, size, root):
    with pytest.raises(note.NoteError):
        note.checkpoint_body(origin, size, root)


def test_sign_note_needs_a_newline_terminated_text(log_key):
    with pytest.raises(note.NoteError):
        note.sign_note("no newline", ORIGIN, log_key)
    with pytest.raises(note.NoteError):
        note.sign_note("tab\there\n", ORIGIN, log_key)
