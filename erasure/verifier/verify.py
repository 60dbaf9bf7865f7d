"""The offline receipt verifier: python -m erasure.verify FILE --jwks FILE|URL [--log-key KEY].

It checks a deletion receipt (a compact JWS) or a bundle (the receipt, its inclusion proof and checkpoint, and
optionally the owner proof) with nothing installed but the standard library and `cryptography`, so an auditor
never has to trust, or even reach, the service: the JWS header and its Ed25519 signature against a JWKS,
that the kid is the key's RFC 7638 thumbprint, the payload's fields, the receipt's inclusion in the log under
the bundle's checkpoint, the checkpoint's signed-note signature against the log key, and the owner proof when
identities are given.

Exit codes: 0 valid, 1 invalid, 2 usage error. Imports nothing from the service, and its siblings only
relatively, so that the folder erasure/verifier/ runs alone: keep it that way.
"""
from __future__ import annotations

import argparse
import binascii
import functools
import hashlib
import hmac
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeGuard, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import merkle, note
from .owner import b64url

MAX_INPUT_BYTES = 1 << 20  # a receipt or bundle file
MAX_JWS_BYTES = 64 << 10
MAX_JWKS_BYTES = 1 << 20
MAX_LOG_KEY_BYTES = 4096
MAX_JWKS_KEYS = 1000
MAX_IDENTITIES = 1000
MAX_LIST_ITEMS = 10_000
FETCH_TIMEOUT_SECONDS = 10

RECEIPT_TYPE = "ownstory-receipt+jws"
ALGORITHMS = frozenset({"Ed25519", "EdDSA"})  # the fully-specified name, and the RFC 8037 one
OUTCOMES = frozenset({"revoked", "already_invalid", "manual"})
MAX_DEADLINE = timedelta(days=30)  # OWNSTORY_ERASURE_DEADLINE_DAYS may be lower, never higher
THUMBPRINT_MEMBERS = {  # RFC 7638 section 3.2, and RFC 8037 section 2 for OKP
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}
CHECKS = ("format", "key_known", "kid_thumbprint", "signature", "claims", "log_inclusion",
          "checkpoint_signature", "owner")
CLAIMS = ("v", "receipt_id", "iss", "iat", "request_id", "scope", "subject_commitment", "requested_at",
          "deadline", "completed_at", "revocations", "purged", "residual_rows", "retained", "reentry")

_B64URL = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)
_B64URL_VALUES = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.ASCII)
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z", re.ASCII)


class UsageError(Exception):
    """Bad arguments, or a JWKS or log key that cannot be read: exit code 2, nothing was verified."""


class _Malformed(ValueError):
    """Input that cannot even be taken apart; the message is the one line shown to the user."""


@dataclass
class Report:
    """The outcome: each check True (passed), False (failed) or None (not checked, or nothing to check)."""

    checks: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(CHECKS))
    claims: dict | None = None
    problems: list[str] = field(default_factory=list)  # one line per failed check
    notes: list[str] = field(default_factory=list)  # what was not checked, and other things worth saying
    kid: str | None = None
    leaf_index: int | None = None
    tree_size: int | None = None
    origin: str | None = None

    @property
    def valid(self) -> bool:
        return not self.problems and self.checks["signature"] is True and self.checks["claims"] is True

    def fail(self, check: str, message: str) -> None:
        self.checks[check] = False
        self.problems.append(f"{check}: {message}")

    def to_json(self) -> dict:
        return {"valid": self.valid, "checks": dict(self.checks), "claims": self.claims or {},
                "problems": list(self.problems), "notes": list(self.notes)}


@dataclass(frozen=True)
class _Key:
    kid: str
    public_key: Ed25519PublicKey | None  # None: two different keys claim this kid
    thumbprint: str | None
    retired: bool


# --- the library entry points -------------------------------------------------------------------

def verify(receipt_or_bundle: str | bytes | dict, jwks: dict, log_key: str | None = None) -> Report:
    """Verify one receipt (compact JWS text) or bundle (JSON text or dict) against a JWKS and a log key.

    Raises UsageError only for a JWKS or log key that cannot be used; bad receipts give an invalid Report.
    """
    return Verifier(jwks, log_key).verify(receipt_or_bundle)


class Verifier:
    """Holds the loaded keys, so that verifying many receipts costs little more than their signatures."""

    def __init__(self, jwks: dict, log_key: str | None = None):
        self._keys = load_jwks(jwks)
        self._log_key = None
        if log_key is not None:
            try:
                self._log_key = note.parse_verifier_key(log_key)
            except note.NoteError as error:
                raise UsageError(f"the log key is not a note verifier key: {error}") from None
        self._checkpoints: dict[str, tuple[note.Checkpoint | None, str | None]] = {}

    @property
    def log_key(self) -> note.VerifierKey | None:
        return self._log_key

    def verify(self, receipt_or_bundle: str | bytes | dict) -> Report:
        report = Report()
        try:
            jws, log, owner_proof = _read_input(receipt_or_bundle)
        except _Malformed as error:
            report.fail("format", str(error))
            return report
        claims = self._check_receipt(jws, report)
        self._check_log(jws, log, report)
        self._check_owner(owner_proof, claims, report)
        return report

    # - the JWS and its claims

    def _check_receipt(self, jws: str, report: Report) -> dict | None:
        try:
            header, payload, signing_input, signature = parse_jws(jws)
        except _Malformed as error:
            report.fail("format", str(error))
            return None
        header_ok = _check_header(header, report)
        kid = header.get("kid")
        if isinstance(kid, str) and kid:
            report.kid = kid
            self._check_signature(kid, header_ok, signing_input, signature, report)
        else:
            report.checks["signature"] = False  # no key to check it with; the header problem is the line shown
        try:
            claims = _json_loads(payload)
        except ValueError as error:
            report.fail("claims", f"the payload is not strict JSON: {_show(str(error))}")
            return None
        if not isinstance(claims, dict):
            report.fail("claims", "the payload is not a JSON object")
            return None
        report.claims = claims
        problems = check_claims(claims)
        for problem in problems:
            report.fail("claims", problem)
        if not problems:
            report.checks["claims"] = True
            if claims["residual_rows"]:
                report.notes.append(f"the receipt reports {claims['residual_rows']} residual rows: data that "
                                    "was still found after the purge")
        return claims

    def _check_signature(self, kid: str, header_ok: bool, signing_input: bytes, signature: bytes,
                         report: Report) -> None:
        key = self._keys.get(kid)
        if key is None:
            report.fail("key_known", f"no key in the JWKS has kid {_show(kid)}")
            report.checks["signature"] = False
            return
        report.checks["key_known"] = True
        if key.thumbprint == kid:
            report.checks["kid_thumbprint"] = True
        else:
            report.fail("kid_thumbprint", f"kid {_show(kid)} is not the RFC 7638 thumbprint of its key "
                                          f"({key.thumbprint})")
        if key.retired:
            report.notes.append(f"the key {kid} is retired: it signed this receipt before a key rotation")
        if key.public_key is None:
            report.fail("signature", f"the JWKS holds two different keys under kid {_show(kid)}")
        elif not header_ok:
            report.checks["signature"] = False  # the header problem is the line shown
        elif len(signature) != 64:
            report.fail("signature", f"an Ed25519 signature is 64 bytes, not {len(signature)}")
        else:
            try:
                key.public_key.verify(signature, signing_input)
            except InvalidSignature:
                report.fail("signature", f"the signature does not verify with the key published as {kid}")
            else:
                report.checks["signature"] = True

    # - the log

    def _check_log(self, jws: str, log: object, report: Report) -> None:
        if log is None:
            if self._log_key is not None:
                report.notes.append("no log proof to check: a bundle carries one, a bare receipt does not")
            return
        try:
            leaf_index, tree_size, proof, checkpoint_text = _read_log(log)
        except _Malformed as error:
            report.fail("log_inclusion", str(error))
            return
        report.leaf_index, report.tree_size = leaf_index, tree_size
        checkpoint = self._checkpoint(checkpoint_text, report)
        if checkpoint is None:
            return
        report.origin = checkpoint.origin
        if checkpoint.size != tree_size:
            report.fail("log_inclusion", f"the proof is for a tree of {tree_size} leaves, the checkpoint for "
                                         f"{checkpoint.size}")
            return
        leaf = merkle.leaf_hash(jws.encode("utf-8", "surrogatepass"))  # ASCII for any well-formed JWS
        if merkle.verify_inclusion(leaf_index, tree_size, leaf, proof, checkpoint.root):
            report.checks["log_inclusion"] = True
        else:
            report.fail("log_inclusion", f"the inclusion proof does not lead from this receipt at leaf index "
                                         f"{leaf_index} to the checkpoint's root")

    def _checkpoint(self, text: str, report: Report) -> note.Checkpoint | None:
        """The checkpoint the proof must reach; its note signature is checked when a log key is known."""
        if self._log_key is None:
            report.notes.append("the checkpoint's signature was not checked: give --log-key (the key served "
                                "at /api/v1/log/key) to check it")
            try:
                return note.parse_checkpoint(note.note_text(text))
            except note.NoteError as error:
                report.fail("log_inclusion", f"the checkpoint is malformed: {error}")
                return None
        cached = self._checkpoints.get(text)
        if cached is None:
            try:
                cached = (note.open_checkpoint(text, self._log_key), None)
            except note.NoteError as error:
                cached = (None, str(error))
            if len(self._checkpoints) >= 256:
                self._checkpoints.clear()
            if len(text) <= 4096:  # a real checkpoint is a few hundred bytes
                self._checkpoints[text] = cached
        checkpoint, problem = cached
        if checkpoint is not None:
            report.checks["checkpoint_signature"] = True
            return checkpoint
        report.fail("checkpoint_signature", f"the checkpoint is not signed by the log key: {problem}")
        try:  # still say whether the proof matches the unsigned checkpoint
            return note.parse_checkpoint(note.note_text(text))
        except note.NoteError:
            report.checks["log_inclusion"] = False
            return None

    # - the owner proof

    def _check_owner(self, owner_proof: object, claims: dict | None, report: Report) -> None:
        if owner_proof is None:
            return
        try:
            salt, identities = _read_owner_proof(owner_proof)
        except _Malformed as error:
            report.fail("owner", str(error))
            return
        expected = claims.get("subject_commitment") if claims else None
        if not isinstance(expected, str):
            report.fail("owner", "the receipt has no subject_commitment to check the owner proof against")
            return
        if hmac.compare_digest(commitment(salt, identities), expected):
            report.checks["owner"] = True
        else:
            report.fail("owner", "the salt and identities do not match the receipt's subject_commitment")


# --- keys ---------------------------------------------------------------------------------------

def jwk_thumbprint(jwk: dict) -> str:
    """The RFC 7638 thumbprint: SHA-256 of the required members in sorted, compact JSON, base64url."""
    kty = jwk.get("kty")
    members = THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"no thumbprint for key type {kty!r}")
    if not all(isinstance(jwk.get(name), str) for name in members):
        raise ValueError(f"a {kty} key needs the members {', '.join(members)}")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), ensure_ascii=False,
                           sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def load_jwks(jwks: object) -> dict[str, _Key]:
    """The Ed25519 keys of a JWKS by kid (the JWK's own kid, else its thumbprint); other keys are ignored."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise UsageError('the JWKS is not a JSON object with a "keys" list')
    if len(jwks["keys"]) > MAX_JWKS_KEYS:
        raise UsageError(f"the JWKS has more than {MAX_JWKS_KEYS} keys")
    keys: dict[str, _Key] = {}
    for jwk in jwks["keys"]:
        loaded = _load_jwk(jwk)
        if loaded is None:
            continue
        public_key, raw, thumbprint = loaded
        kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else thumbprint
        retired = bool(jwk.get("retired")) or jwk.get("status") == "retired"
        known = keys.get(kid)
        if known is not None and (known.public_key is None or _raw(known.public_key) != raw):
            keys[kid] = _Key(kid, None, thumbprint, retired)
            continue
        keys[kid] = _Key(kid, public_key, thumbprint, retired)
    return keys


def _load_jwk(jwk: object) -> tuple[Ed25519PublicKey, bytes, str] | None:
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    if jwk.get("use", "sig") != "sig" or not _one_of(jwk.get("alg", "Ed25519"), ALGORITHMS):
        return None
    x = jwk.get("x")
    raw = _b64url_decode(x) if isinstance(x, str) else None
    if raw is None or len(raw) != 32:
        return None
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None
    return public_key, raw, jwk_thumbprint(jwk)


def _raw(public_key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- the JWS ------------------------------------------------------------------------------------

def parse_jws(text: str) -> tuple[dict, bytes, bytes, bytes]:
    """Take a compact JWS apart: (protected header, payload, signing input, signature). Checks syntax only."""
    if not isinstance(text, str) or not text:
        raise _Malformed("the receipt is not a compact JWS")
    if len(text) > MAX_JWS_BYTES:
        raise _Malformed(f"the receipt is larger than {MAX_JWS_BYTES} bytes")
    if not text.isascii():
        raise _Malformed("the receipt is not a compact JWS: it holds non-ASCII characters")
    parts = text.split(".")
    if len(parts) != 3:
        raise _Malformed(f"the receipt is not a compact JWS: it has {len(parts)} part{'s' * (len(parts) > 1)}, "
                         "not 3")
    header_b64, payload_b64, signature_b64 = parts
    header = dict(_header(header_b64))
    payload, signature = _b64url_decode(payload_b64), _b64url_decode(signature_b64)
    if payload is None or signature is None:
        raise _Malformed("the receipt is not a compact JWS: a part is not unpadded base64url")
    if not payload:
        raise _Malformed("the receipt is not a compact JWS: its payload is empty")
    return header, payload, f"{header_b64}.{payload_b64}".encode("ascii"), signature


@functools.lru_cache(maxsize=64)
def _header(header_b64: str) -> dict:
    """The protected header, decoded once: every receipt signed with one key has the same header."""
    raw = _b64url_decode(header_b64) if len(header_b64) <= 4096 else None
    if not raw:
        raise _Malformed("the receipt is not a compact JWS: its header is not unpadded base64url")
    try:
        header = _json_loads(raw)
    except ValueError as error:
        raise _Malformed(f"the JWS header is not strict JSON: {_show(str(error))}") from None
    if not isinstance(header, dict):
        raise _Malformed("the JWS header is not a JSON object")
    return header


def _check_header(header: dict, report: Report) -> bool:
    ok = True
    alg = header.get("alg")
    if not _one_of(alg, ALGORITHMS):
        report.fail("format", f"alg {_show(alg)} is not accepted: receipts are signed with Ed25519 (or EdDSA)")
        ok = False
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        report.fail("format", "the JWS header has no kid")
        ok = False
    if header.get("typ") != RECEIPT_TYPE:
        report.fail("format", f"typ {_show(header.get('typ'))} is not {RECEIPT_TYPE!r}")
        ok = False
    for name in ("crit", "b64"):
        if name in header:
            report.fail("format", f"the JWS header's {name!r} asks for an extension this verifier does not know")
            ok = False
    if ok:
        report.checks["format"] = True
    return ok


# --- the claims ---------------------------------------------------------------------------------

def check_claims(claims: dict) -> list[str]:
    """What is wrong with a receipt payload, against the receipt's published format: one line per problem."""
    missing = [name for name in CLAIMS if name not in claims]
    if missing:
        return [f"the payload lacks {', '.join(missing)}"]
    problems = []
    if not (_is_int(claims["v"]) and claims["v"] == 1):
        problems.append(f"v is {_show(claims['v'])}, not 1")
    if not (isinstance(claims["receipt_id"], str) and _UUID4.fullmatch(claims["receipt_id"])):
        problems.append("receipt_id is not a lowercase UUID (version 4)")
    if not (isinstance(claims["request_id"], str) and _UUID.fullmatch(claims["request_id"])):
        problems.append("request_id is not a lowercase UUID")
    iss = claims["iss"]
    if not (isinstance(iss, str) and iss.startswith(("http://", "https://")) and len(iss) <= 2048):
        problems.append("iss is not the service's http(s) base URL")
    if not (_is_int(claims["iat"]) and claims["iat"] >= 0):
        problems.append("iat is not a whole number of seconds since 1970")
    if not (isinstance(claims["scope"], str) and 0 < len(claims["scope"]) <= 200):
        problems.append("scope is not a network key or 'all'")
    commitment_raw = _b64url_decode(claims["subject_commitment"]) if isinstance(
        claims["subject_commitment"], str) else None
    if commitment_raw is None or len(commitment_raw) != 32:
        problems.append("subject_commitment is not a SHA-256 hash in unpadded base64url")
    times = {}
    for name in ("requested_at", "deadline", "completed_at"):
        times[name] = _timestamp(claims[name])
        if times[name] is None:
            problems.append(f"{name} is not an RFC 3339 UTC time ending in Z")
    requested, deadline, completed = times["requested_at"], times["deadline"], times["completed_at"]
    if requested is not None and deadline is not None and completed is not None:
        if completed < requested:
            problems.append("completed_at is before requested_at")
        if not requested < deadline <= requested + MAX_DEADLINE:
            problems.append("deadline is not within 30 days after requested_at")
    problems += _check_list(claims, "revocations", _revocation_problem)
    problems += _check_list(claims, "purged", _purged_problem)
    if not (_is_int(claims["residual_rows"]) and claims["residual_rows"] >= 0):
        problems.append("residual_rows is not a count")
    problems += _check_list(claims, "retained", _retained_problem)
    reentry = claims["reentry"]
    if not isinstance(reentry, dict):
        problems.append("reentry is not an object")
    else:
        if not (_is_int(reentry.get("waiting_period_days")) and reentry["waiting_period_days"] == 0):
            problems.append(f"reentry.waiting_period_days is {_show(reentry.get('waiting_period_days'))}, "
                            "not 0: nobody may be made to wait to come back")
        if not isinstance(reentry.get("conditions"), list):
            problems.append("reentry.conditions is not a list")
        if not isinstance(reentry.get("statement"), str):
            problems.append("reentry.statement is not text")
    return problems


def _check_list(claims: dict, name: str, item_problem) -> list[str]:
    items = claims[name]
    if not isinstance(items, list) or len(items) > MAX_LIST_ITEMS:
        return [f"{name} is not a list"]
    for position, item in enumerate(items):
        problem = item_problem(item) if isinstance(item, dict) else "is not an object"
        if problem:
            return [f"{name}[{position}] {problem}"]
    return []


def _revocation_problem(item: dict) -> str | None:
    if not _is_text(item.get("network")):
        return "has no network"
    if not _one_of(item.get("outcome"), OUTCOMES):
        return f"has outcome {_show(item.get('outcome'))}, not one of {', '.join(sorted(OUTCOMES))}"
    if _timestamp(item.get("at")) is None:
        return "has no RFC 3339 UTC time 'at'"
    if "note" in item and not _is_text(item["note"]):
        return "has a note that is not text"
    return None


def _purged_problem(item: dict) -> str | None:
    if not (_is_text(item.get("store")) and _is_text(item.get("category"))):
        return "has no store or category"
    if not (_is_int(item.get("rows")) and item["rows"] >= 0):
        return "has no row count"
    return None


def _retained_problem(item: dict) -> str | None:
    if not all(isinstance(item.get(name), str) for name in ("what", "form", "why")):
        return "does not say what, in what form and why"
    return None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- the bundle ---------------------------------------------------------------------------------

def _read_input(item: object) -> tuple[str, object, object]:
    """(JWS, log or None, owner_proof or None) from a JWS text, a bundle's JSON text, or a bundle dict."""
    if isinstance(item, (bytes, bytearray)):
        if len(item) > MAX_INPUT_BYTES:
            raise _Malformed(f"the input is larger than {MAX_INPUT_BYTES} bytes")
        try:
            item = bytes(item).decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed("the input is not UTF-8 text") from None
    if isinstance(item, str):
        if len(item) > MAX_INPUT_BYTES:
            raise _Malformed(f"the input is larger than {MAX_INPUT_BYTES} bytes")
        text = item.strip().lstrip("\ufeff")
        if not text.startswith("{"):
            return text, None, None
        try:
            item = _json_loads(text)
        except ValueError:
            raise _Malformed("the bundle is not valid JSON") from None
    if not isinstance(item, dict):
        raise _Malformed("the input is neither a compact JWS nor a bundle object")
    receipt = item.get("receipt")
    if not isinstance(receipt, str):
        raise _Malformed('the bundle has no "receipt" text')
    return receipt, item.get("log"), item.get("owner_proof")


def _read_log(log: object) -> tuple[int, int, list[bytes], str]:
    if not isinstance(log, dict):
        raise _Malformed('the bundle\'s "log" is not an object')
    leaf_index, tree_size = log.get("leaf_index"), log.get("tree_size")
    if not (_is_int(leaf_index) and _is_int(tree_size) and 0 <= leaf_index < tree_size < 1 << 63):
        raise _Malformed("leaf_index and tree_size are not counts with leaf_index below tree_size")
    hashes = log.get("inclusion")
    if not isinstance(hashes, list) or len(hashes) > merkle.MAX_PROOF_HASHES:
        raise _Malformed("the inclusion proof is not a list of hashes")
    proof = []
    for value in hashes:
        raw = note.decode_base64(value) if isinstance(value, str) else None
        if raw is None or len(raw) != merkle.HASH_SIZE:
            raise _Malformed("an inclusion proof hash is not 32 bytes of standard base64")
        proof.append(raw)
    checkpoint = log.get("checkpoint")
    if not isinstance(checkpoint, str) or len(checkpoint) > note.MAX_NOTE_BYTES:
        raise _Malformed("the bundle has no checkpoint text")
    return leaf_index, tree_size, proof, checkpoint


def _read_owner_proof(owner_proof: object) -> tuple[bytes, list[str]]:
    if not isinstance(owner_proof, dict):
        raise _Malformed("owner_proof is not an object")
    salt_text, identities = owner_proof.get("salt"), owner_proof.get("identities")
    salt = _b64url_decode(salt_text) if isinstance(salt_text, str) else None
    if salt is None or len(salt) != 32:
        raise _Malformed("owner_proof.salt is not 32 bytes of unpadded base64url")
    if not (isinstance(identities, list) and 0 < len(identities) <= MAX_IDENTITIES
            and all(isinstance(i, str) and 0 < len(i) <= 1024 for i in identities)):
        raise _Malformed("owner_proof.identities is not a list of identity strings")
    return salt, identities


def commitment(salt: bytes, identities: list[str]) -> str:
    """subject_commitment = base64url(SHA-256(salt || the sorted identities as compact UTF-8 JSON))."""
    canonical = json.dumps(sorted(identities), separators=(",", ":"), ensure_ascii=False).encode()
    return b64url(hashlib.sha256(salt + canonical).digest())


# --- small helpers ------------------------------------------------------------------------------

def _b64url_decode(text: str) -> bytes | None:
    """Unpadded base64url, canonical only: a second spelling of the same bytes (other unused low bits in
    the last character) is refused, so one receipt has one text and one leaf hash."""
    tail = len(text) % 4
    if tail == 1 or _B64URL.fullmatch(text) is None:
        return None
    if tail and _B64URL_VALUES[text[-1]] & (0x0F if tail == 2 else 0x03):
        return None
    return binascii.a2b_base64(text.encode("ascii").translate(_URL_TO_STANDARD) + b"=" * (-len(text) % 4))


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a member name appears twice")  # two verifiers might each read a different one
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def _json_loads(data: str | bytes) -> object:
    """Strict JSON: UTF-8, no duplicate member names, no NaN or Infinity, and a ValueError for anything else."""
    try:
        return _DECODER.decode(data.decode("utf-8") if isinstance(data, bytes) else data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int  # not a bool, not a float that happens to be whole


def _one_of(value: object, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed  # a list or dict from the input is unhashable


def _is_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 1024


def _show(value: object) -> str:
    """A value from the input, quoted and cut short, so that it cannot break or spoof an output line."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


# --- reading files and URLs ---------------------------------------------------------------------

def read_source(source: str, limit: int, what: str) -> bytes:
    """A file's bytes, or an http(s) URL's body, at most `limit` bytes."""
    if "://" in source:
        return _fetch(source, limit, what)
    try:
        with open(source, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as error:
        raise UsageError(f"cannot read the {what} {source!r}: {error.strerror or error}") from None
    if len(data) > limit:
        raise UsageError(f"the {what} {source!r} is larger than {limit} bytes")
    return data


def _fetch(url: str, limit: int, what: str) -> bytes:
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise UsageError(f"the {what} URL must be http or https: {url!r}")

    class HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
                raise urllib.error.HTTPError(newurl, code, "redirect away from http(s)", headers, fp)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "ownstory-verify"})  # noqa: S310 (http(s) only)
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
            data = response.read(limit + 1)
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise UsageError(f"cannot fetch the {what} from {url}: {error}") from None
    if len(data) > limit:
        raise UsageError(f"the {what} at {url} is larger than {limit} bytes")
    return data


def load_jwks_source(source: str) -> dict:
    data = read_source(source, MAX_JWKS_BYTES, "JWKS")
    try:
        jwks = _json_loads(data)
    except ValueError:
        raise UsageError(f"the JWKS {source!r} is not JSON") from None
    load_jwks(jwks)  # raises UsageError with the reason
    return cast(dict, jwks)  # a dict: load_jwks has checked it


def log_key_text(value: str) -> str:
    """--log-key: the key itself, or a file or http(s) URL holding it."""
    try:
        note.parse_verifier_key(value)
        return value
    except note.NoteError as error:
        if "://" not in value and not Path(value).is_file():
            raise UsageError(f"--log-key is neither a note verifier key nor a file: {error}") from None
    data = read_source(value, MAX_LOG_KEY_BYTES, "log key")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"the log key in {value!r} is not text") from None


def _read_input_file(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path!r}: {error.strerror or error}") from None


# --- the command --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m erasure.verify",
        description="Verify an Ownstory deletion receipt or bundle offline. Exit 0 valid, 1 invalid, 2 usage error.")
    parser.add_argument("file", help="a receipt (compact JWS) or a bundle (JSON); '-' reads standard input")
    parser.add_argument("--jwks", required=True,
                        help="the receipt keys: a JWKS file, or an http(s) URL such as https://HOST/.well-known/jwks.json")
    parser.add_argument("--log-key", help="the log's note verifier key (served at /api/v1/log/key), or a file "
                                          "or URL holding it; without it the checkpoint's signature is not checked")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    try:
        jwks = load_jwks_source(args.jwks)
        log_key = log_key_text(args.log_key) if args.log_key is not None else None
        verifier = Verifier(jwks, log_key)
        data = _read_input_file(args.file)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = verifier.verify(data)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(summary(report)))
    return 0 if report.valid else 1


def summary(report: Report) -> list[str]:
    """The lines the command prints: every failed check on a line of its own, or a short account of success."""
    if not report.valid:
        lines = [f"INVALID {problem}" for problem in report.problems]
        if not lines:
            lines = ["INVALID the receipt could not be checked"]
        return lines + [f"note: {text}" for text in report.notes]
    claims = report.claims or {}
    lines = [f"VALID receipt {claims.get('receipt_id')} from {claims.get('iss')}, completed "
             f"{claims.get('completed_at')}, scope {claims.get('scope')}",
             f"  signature: ok, Ed25519 key {report.kid} (its RFC 7638 thumbprint)",
             "  claims: ok"]
    if report.checks["log_inclusion"]:
        lines.append(f"  log: leaf index {report.leaf_index} in a tree of {report.tree_size}, log {report.origin}")
    else:
        lines.append("  log: no inclusion proof given (a bundle carries one)")
    if report.checks["checkpoint_signature"]:
        lines.append("  checkpoint: signed by the log key")
    elif report.checks["log_inclusion"]:
        lines.append("  checkpoint: signature NOT checked (no --log-key given)")
    if report.checks["owner"]:
        lines.append("  owner proof: ok, the identities match subject_commitment")
    return lines + [f"note: {text}" for text in report.notes if "was not checked" not in text]


if __name__ == "__main__":
    sys.exit(main())
