"""C2SP signed notes with Ed25519, and the tlog-checkpoint body the receipt log signs with them.

Formats (c2sp.org/signed-note, c2sp.org/tlog-checkpoint, golang.org/x/mod/sumdb/note):

    checkpoint body   <origin>\\n<tree size, decimal>\\n<root, standard base64>\\n
    signed note       <body>\\n— <key name> <base64(key ID || Ed25519 signature over body)>\\n
    verifier key      <key name>+<key ID, 8 hex digits>+<base64(0x01 || 32-byte public key)>
    key ID            SHA-256(key name || 0x0A || 0x01 || public key)[:4]

The log's key name is its origin. Only `cryptography` is needed: the offline verifier imports this module.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_NOTE_BYTES = 256 * 1024  # room for 16 post-quantum signatures, which the spec says verifiers must accept
MAX_SIGNATURES = 100  # as golang.org/x/mod/sumdb/note; the spec asks for at least 16
MAX_TREE_SIZE = (1 << 64) - 1
ROOT_SIZE = 32

_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every ASCII control character but the newline


class NoteError(ValueError):
    """A note, checkpoint or verifier key that is malformed, or not signed by the expected key."""


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes  # 4 bytes
    public_key: Ed25519PublicKey
    public_bytes: bytes  # the raw 32-byte Ed25519 key

    def __str__(self) -> str:
        return _format_verifier_key(self.name, self.key_id, self.public_bytes)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()  # opaque extra lines; Ownstory writes none

    def body(self) -> str:
        return checkpoint_body(self.origin, self.size, self.root) + "".join(line + "\n" for line in self.extensions)


# --- checkpoints --------------------------------------------------------------------------------

def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The note text of a checkpoint: origin, tree size and root hash, each line ending in a newline."""
    if not is_valid_name(origin):
        raise NoteError(f"origin {origin!r} must be non-empty, without spaces or '+', to be the log's key name")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise NoteError(f"tree size {size!r} is not an unsigned 64-bit integer")
    if not isinstance(root, bytes) or len(root) != ROOT_SIZE:
        raise NoteError("the root hash is 32 bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note text (the body, not the signed note). Checks the syntax only."""
    if not isinstance(body, str) or not body.endswith("\n"):
        raise NoteError("a checkpoint ends with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has at least three lines: origin, tree size and root hash")
    if any(line == "" for line in lines):
        raise NoteError("a checkpoint has no empty lines")
    origin, size_text, root_text = lines[:3]
    if _DECIMAL.fullmatch(size_text) is None or int(size_text) > MAX_TREE_SIZE:
        raise NoteError(f"checkpoint tree size {size_text[:30]!r} is not a decimal number without leading zeros")
    root = decode_base64(root_text)
    if root is None or len(root) != ROOT_SIZE:
        raise NoteError("checkpoint root hash is not 32 bytes of standard base64")
    return Checkpoint(origin, int(size_text), root, tuple(lines[3:]))


# --- keys ---------------------------------------------------------------------------------------

def is_valid_name(name: object) -> bool:
    """A key name is non-empty and holds neither Unicode spaces nor '+'."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(ch.isspace() for ch in name)
        and _CONTROL.search(name) is None
        and _is_utf8(name)
    )


def key_id(origin: str, public_key_bytes: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4], the Ed25519 key ID of the signed-note spec."""
    return hashlib.sha256(origin.encode() + b"\n" + bytes([ALG_ED25519]) + public_key_bytes).digest()[:4]


def verifier_key(origin: str, public: Ed25519PublicKey | bytes) -> str:
    """The key as note verifiers read it: <name>+<key ID hex>+<base64(0x01 || public key)>."""
    if not is_valid_name(origin):
        raise NoteError(f"key name {origin!r} must be non-empty, without spaces or '+'")
    raw = _raw_public(public)
    return _format_verifier_key(origin, key_id(origin, raw), raw)


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse <name>+<hex key ID>+<base64 key>, checking the key ID against the name and key."""
    if not isinstance(text, str) or len(text) > 4096:
        raise NoteError("a verifier key is a short line of text")
    text = text.strip()
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key reads <name>+<key ID>+<key>")
    name, id_hex, key_b64 = parts
    if not is_valid_name(name):
        raise NoteError(f"verifier key name {name[:100]!r} is empty or holds spaces")
    if _KEY_ID_HEX.fullmatch(id_hex) is None:
        raise NoteError("a verifier key's key ID is 8 hex digits")
    key = decode_base64(key_b64)
    if key is None or len(key) == 0:
        raise NoteError("a verifier key's key is not standard base64")
    if key[0] != ALG_ED25519:
        raise NoteError(f"verifier key algorithm {key[0]} is not Ed25519 (1)")
    if len(key) != 33:
        raise NoteError("an Ed25519 verifier key holds 32 bytes of public key")
    raw = key[1:]
    expected = key_id(name, raw)
    if bytes.fromhex(id_hex) != expected:
        raise NoteError("the verifier key's key ID does not match its name and key")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise NoteError("the verifier key is not an Ed25519 public key") from error
    return VerifierKey(name, expected, public_key, raw)


# --- notes --------------------------------------------------------------------------------------

def sign_note(body: str, origin: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note: the body, a blank line, and one signature line by the key named `origin`."""
    _check_text(body)
    if not body.endswith("\n"):
        raise NoteError("a note text ends with a newline")
    if not is_valid_name(origin):
        raise NoteError(f"key name {origin!r} must be non-empty, without spaces or '+'")
    raw = _raw_public(private_key.public_key())
    signature = private_key.sign(body.encode())
    encoded = base64.b64encode(key_id(origin, raw) + signature).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{origin} {encoded}\n"


def open_note(note_text: str, key: VerifierKey | str) -> str:
    """The note's text, once a signature by `key` verifies.

    As the spec asks: signatures by other keys are ignored (even if they share the name or the key ID, but
    not both), a signature by `key` that fails rejects the note, and a note with none by `key` is rejected.
    """
    if isinstance(key, str):
        key = parse_verifier_key(key)
    text, signatures = _split_note(note_text)
    verified = False
    for name, sig_key_id, signature in signatures:
        if name != key.name or sig_key_id != key.key_id:
            continue
        try:
            key.public_key.verify(signature, text.encode())
        except InvalidSignature:
            raise NoteError(f"the signature by {key.name}+{key.key_id.hex()} does not verify") from None
        verified = True
    if not verified:
        raise NoteError(f"the note has no signature by the key {key.name}+{key.key_id.hex()}")
    return text


def open_checkpoint(note_text: str, verifier_key_text: VerifierKey | str) -> Checkpoint:
    """A checkpoint whose note signature by the log key verifies, and whose origin is that key's name."""
    key = parse_verifier_key(verifier_key_text) if isinstance(verifier_key_text, str) else verifier_key_text
    checkpoint = parse_checkpoint(open_note(note_text, key))
    if checkpoint.origin != key.name:
        raise NoteError(f"the checkpoint's origin {checkpoint.origin!r} is not the log key's name {key.name!r}")
    return checkpoint


def note_text(note: str) -> str:
    """The text of a well-formed signed note, without checking any signature."""
    return _split_note(note)[0]


# --- internals ----------------------------------------------------------------------------------

def _split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Split a signed note at its last blank line into text and (name, key ID, signature) triples."""
    if not isinstance(note, str):
        raise NoteError("a signed note is text")
    if len(note) > MAX_NOTE_BYTES or len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise NoteError(f"the note is larger than {MAX_NOTE_BYTES} bytes")
    _check_text(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if block == "" or not block.endswith("\n"):
        raise NoteError("the note's signature lines must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        raw = decode_base64(encoded)
        if not is_valid_name(name) or raw is None or len(raw) < 5:
            raise NoteError("a signature line reads: — <key name> <base64(key ID || signature)>")
        signatures.append((name, raw[:4], raw[4:]))
    return text, signatures


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise NoteError("a note is text")
    if not _is_utf8(text):
        raise NoteError("a note is valid UTF-8")
    if _CONTROL.search(text):
        raise NoteError("a note holds no control characters other than newlines")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_base64(text: str) -> bytes | None:
    """Strict standard base64 with padding: anything that does not round-trip is rejected."""
    if not text or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == text else None


def _raw_public(public: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public, Ed25519PublicKey):
        return public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if isinstance(public, bytes) and len(public) == 32:
        return public
    raise NoteError("an Ed25519 public key is 32 bytes")


def _format_verifier_key(name: str, id_bytes: bytes, raw: bytes) -> str:
    return f"{name}+{id_bytes.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + raw).decode()}"
