"""The offline verifier: RFC vectors, receipts signed with joserfc, every bad input, and its isolation."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws as jose
from joserfc.jwk import ECKey, OKPKey

from bench import verification
from erasure.verifier import merkle, note, owner, verify

ROOT = Path(__file__).resolve().parents[3]
TYP = "ownstory-receipt+jws"
ORIGIN = "127.0.0.1/ownstory/receipts"
IDENTITIES = ["email:liz@example.org", "account:demo:1001", "handle:demo:liz"]

# RFC 8037 appendix A.1 (the key), A.3 (its thumbprint) and A.4 (a signature by it)
A4_JWK = {"kty": "OKP", "crv": "Ed25519", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
          "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
A3_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
A4_JWS = ("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhi"
          "jcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
# RFC 7638 section 3.1
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
         "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHz"
         "u6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8a"
         "wapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: OKPKey) -> dict:
    return {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": "Ed25519", "use": "sig"}


def sign(claims: dict | bytes, key: OKPKey, **header) -> str:
    """A receipt as the service signs it, with joserfc."""
    protected = {"alg": "Ed25519", "kid": key.thumbprint(), "typ": TYP, **header}
    payload = claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns that RFC 9864 deprecates "EdDSA"
        return jose.serialize_compact(protected, payload, key, algorithms=[protected["alg"]])


def handmade(header: dict, payload: bytes, signature: bytes) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(payload)}.{b64url(signature)}"


class World:
    """One receipt key in a JWKS, one log key, and a log of six leaves holding the receipt at index 4."""

    def __init__(self) -> None:
        self.key = OKPKey.generate_key("Ed25519")
        self.kid = self.key.thumbprint()
        self.jwks = {"keys": [public_jwk(self.key)]}
        self.log_private = Ed25519PrivateKey.generate()
        self.log_key = note.verifier_key(ORIGIN, self.log_private.public_key())
        self.k = os.urandom(32)
        self.claims = verification.sample_claims()
        self.claims["subject_commitment"] = owner.commitment(self.k, IDENTITIES)
        self.jws = sign(self.claims, self.key)
        self.verifier = verify.Verifier(self.jwks, self.log_key)

    def bundle(self, jws: str | None = None, leaf_index: int = 4, size: int = 6, log_private=None,
               with_owner: bool = False) -> dict:
        jws = jws or self.jws
        leaves = [merkle.leaf_hash(f"other receipt {i}".encode()) for i in range(size)]
        leaves[leaf_index] = merkle.leaf_hash(jws.encode())
        nodes: dict[tuple[int, int], bytes] = {}
        for index, leaf in enumerate(leaves):
            for level, position, value in merkle.nodes_to_store(index, leaf, lambda lv, ix: nodes[(lv, ix)]):
                nodes[(level, position)] = value

        def get(level, index):
            return nodes[(level, index)]

        checkpoint = note.sign_note(note.checkpoint_body(ORIGIN, size, merkle.root(size, get)), ORIGIN,
                                    log_private or self.log_private)
        result = {"receipt": jws, "log": {
            "leaf_index": leaf_index, "tree_size": size, "checkpoint": checkpoint,
            "inclusion": [base64.b64encode(h).decode() for h in merkle.inclusion_proof(leaf_index, size, get)]}}
        if with_owner:
            result["owner_proof"] = {"salt": owner.b64url(owner.salt(self.k)), "identities": list(IDENTITIES)}
        return result


@pytest.fixture(scope="module")
def world() -> World:
    return World()


# --- the vectors --------------------------------------------------------------------------------

def test_rfc_8037_a4_signature_vector():
    header, payload, signing_input, signature = verify.parse_jws(A4_JWS)
    assert header == {"alg": "EdDSA"}
    assert payload == b"Example of Ed25519 signing"
    private = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(A4_JWK["d"] + "="))
    assert private.sign(signing_input) == signature  # Ed25519 is deterministic: the very bytes of A.4
    public = {name: A4_JWK[name] for name in ("kty", "crv", "x")}
    keys = verify.load_jwks({"keys": [public]})
    assert list(keys) == [A3_THUMBPRINT]
    keys[A3_THUMBPRINT].public_key.verify(signature, signing_input)


def test_the_rfc_8037_vector_is_not_a_receipt():
    """A bare EdDSA JWS has a good signature but no kid or receipt type: the verifier says so."""
    report = verify.verify(A4_JWS, {"keys": [{k: A4_JWK[k] for k in ("kty", "crv", "x")}]})
    assert not report.valid
    assert report.checks["format"] is False
    assert any("kid" in p for p in report.problems) and any("typ" in p for p in report.problems)


def test_rfc_7638_thumbprint_vector():
    assert verify.jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT
    assert verify.jwk_thumbprint(dict(reversed(list(RFC7638_JWK.items())))) == RFC7638_THUMBPRINT


def test_rfc_8037_a3_thumbprint_vector():
    assert verify.jwk_thumbprint(A4_JWK) == A3_THUMBPRINT  # d is not a required member: it is left out


def test_thumbprints_agree_with_joserfc_for_every_key_type():
    okp, ec = OKPKey.generate_key("Ed25519"), ECKey.generate_key("P-256")
    assert verify.jwk_thumbprint(okp.as_dict(private=False)) == okp.thumbprint()
    assert verify.jwk_thumbprint(ec.as_dict(private=False)) == ec.thumbprint()
    with pytest.raises(ValueError):
        verify.jwk_thumbprint({"kty": "OKP", "crv": "Ed25519"})
    with pytest.raises(ValueError):
        verify.jwk_thumbprint({"kty": "weird"})


def test_the_owner_commitment_matches_the_service():
    k = os.urandom(32)
    assert verify.commitment(owner.salt(k), IDENTITIES) == owner.commitment(k, IDENTITIES)
    assert verify.commitment(owner.salt(k), ["email:zoë@example.org"]) == owner.commitment(k, ["email:zoë@example.org"])


# --- valid receipts -----------------------------------------------------------------------------

def test_a_receipt_signed_with_joserfc_is_valid(world):
    report = world.verifier.verify(world.jws)
    assert report.valid, report.problems
    assert report.checks | {} == {"format": True, "key_known": True, "kid_thumbprint": True, "signature": True,
                                  "claims": True, "log_inclusion": None, "checkpoint_signature": None,
                                  "owner": None}
    assert report.claims == world.claims
    assert report.kid == world.kid


def test_the_rfc_8037_algorithm_name_is_accepted(world):
    assert world.verifier.verify(sign(world.claims, world.key, alg="EdDSA")).valid


def test_a_whole_bundle_is_valid(world):
    report = verify.verify(world.bundle(with_owner=True), world.jwks, world.log_key)
    assert report.valid, report.problems
    assert all(report.checks.values())
    assert (report.leaf_index, report.tree_size, report.origin) == (4, 6, ORIGIN)
    api = report.to_json()
    assert api["valid"] is True and {"signature", "key_known", "log_inclusion"} <= set(api["checks"])


@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, 2), (1, 2), (6, 7), (7, 8), (8, 9), (3, 300)])
def test_bundles_at_any_position_are_valid(world, index, size):
    assert world.verifier.verify(world.bundle(leaf_index=index, size=size)).valid


def test_a_bundle_as_json_text_is_valid(world):
    assert world.verifier.verify(json.dumps(world.bundle())).valid
    assert world.verifier.verify(json.dumps(world.bundle()).encode()).valid
    assert world.verifier.verify(world.jws + "\n").valid


def test_without_a_log_key_the_checkpoint_signature_is_not_checked(world):
    report = verify.verify(world.bundle(log_private=Ed25519PrivateKey.generate()), world.jwks)
    assert report.valid
    assert report.checks["checkpoint_signature"] is None and report.checks["log_inclusion"] is True
    assert any("checkpoint's signature was not checked" in n for n in report.notes)


def test_a_retired_key_still_verifies_old_receipts(world):
    jwks = {"keys": [{**public_jwk(world.key), "retired": True, "retired_at": "2026-11-26T00:00:00Z"},
                     public_jwk(OKPKey.generate_key("Ed25519")), dict(RFC7638_JWK)]}
    report = verify.verify(world.jws, jwks)
    assert report.valid
    assert any("retired" in n for n in report.notes)


def test_a_revocation_may_say_why_it_counts_as_revoked(world):
    """A network that cannot revoke access tokens: the receipt's revocation carries a note."""
    revocations = [{"network": "acme", "outcome": "revoked", "at": "2026-11-25T19:00:03Z",
                    "note": "Acme cannot revoke access tokens; revoking the refresh token ended the grant"}]
    report = verify.verify(world.bundle(sign({**world.claims, "revocations": revocations}, world.key)),
                           world.jwks, world.log_key)
    assert report.checks["claims"] is True, report.problems
    assert report.checks["signature"] is True


def test_residual_rows_are_reported(world):
    claims = {**world.claims, "residual_rows": 2}
    report = world.verifier.verify(sign(claims, world.key))
    assert report.valid and any("2 residual rows" in n for n in report.notes)


# --- bad input: each gives a clear "invalid", never an exception --------------------------------

def _hs256(world: World) -> str:
    """Algorithm confusion: HMAC-SHA256 keyed with the public key's bytes."""
    header = {"alg": "HS256", "kid": world.kid, "typ": TYP}
    head = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(world.claims).encode())}"
    raw = base64.urlsafe_b64decode(world.jwks["keys"][0]["x"] + "=")
    return f"{head}.{b64url(hmac.new(raw, head.encode(), hashlib.sha256).digest())}"


def _foreign(world: World, kid: str | None = None) -> str:
    foreign = OKPKey.generate_key("Ed25519")
    return sign(world.claims, foreign, kid=kid or foreign.thumbprint())


def _bent_proof(world: World) -> dict:
    bundle = world.bundle()
    first = base64.b64decode(bundle["log"]["inclusion"][0])
    bundle["log"]["inclusion"][0] = base64.b64encode(bytes([first[0] ^ 1]) + first[1:]).decode()
    return bundle


def _moved(world: World, **changes) -> dict:
    bundle = world.bundle()
    bundle["log"].update(changes)
    return bundle


def _reheaded(world: World, header: dict | str) -> str:
    """The receipt under another protected header, signed properly, so only the header can be at fault."""
    raw = header.encode() if isinstance(header, str) else json.dumps(header).encode()
    head = f"{b64url(raw)}.{world.jws.split('.')[1]}"
    private = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(world.key.as_dict(private=True)["d"] + "="))
    return f"{head}.{b64url(private.sign(head.encode()))}"


def _tampered_payload(world: World) -> str:
    head, _payload, signature = world.jws.split(".")
    return f"{head}.{b64url(json.dumps({**world.claims, 'residual_rows': 0, 'scope': 'acme'}).encode())}.{signature}"


def _signed_raw(world: World, payload: bytes) -> str:
    return sign(payload, world.key)


BAD_INPUTS = {
    "malformed JSON": (lambda w: '{"receipt": "abc", "log": ', "format"),
    "truncated JWS": (lambda w: w.jws[: len(w.jws) // 2], "format"),
    "JWS without its signature": (lambda w: w.jws.rsplit(".", 1)[0], "format"),
    "JWS with an empty signature": (lambda w: w.jws.rsplit(".", 1)[0] + ".", "signature"),
    "JWS with a cut signature": (lambda w: w.jws.rsplit(".", 1)[0] + "." + b64url(bytes(60)), "signature"),
    "non-base64 text": (lambda w: "this is not a receipt at all!", "format"),
    "non-base64 parts": (lambda w: "ab$.c d.e%f", "format"),
    "padded base64": (lambda w: w.jws + "==", "format"),
    "oversized input": (lambda w: "A" * (verify.MAX_INPUT_BYTES + 1), "format"),
    "oversized JWS in a bundle": (lambda w: {"receipt": "A" * (verify.MAX_JWS_BYTES + 1)}, "format"),
    "binary garbage": (lambda w: b"\xff\xfe\x00garbage", "format"),
    "a non-ASCII receipt in a bundle": (lambda w: {**w.bundle(), "receipt": "\u00e9" + w.jws}, "format"),
    "deeply nested JSON": (lambda w: '{"receipt": ' + "[" * 100_000, "format"),
    "a bundle that is not an object": (lambda w: "[1, 2, 3]", "format"),
    "alg none": (lambda w: handmade({"alg": "none", "kid": w.kid, "typ": TYP}, b"{}", b""), "format"),
    "HS256 keyed with the public key": (_hs256, "format"),
    "an alg that is a list": (lambda w: _reheaded(w, {"alg": ["Ed25519"], "kid": w.kid, "typ": TYP}), "format"),
    "a repeated header member": (
        lambda w: _reheaded(w, f'{{"alg":"none","alg":"Ed25519","kid":"{w.kid}","typ":"{TYP}"}}'), "format"),
    "a critical extension": (lambda w: _reheaded(w, {"alg": "Ed25519", "kid": w.kid, "typ": TYP, "crit": ["exp"]}),
                             "format"),
    "another typ": (lambda w: _reheaded(w, {"alg": "Ed25519", "kid": w.kid, "typ": "JWT"}), "format"),
    "unknown kid": (lambda w: _foreign(w), "key_known"),
    "foreign key under a known kid": (lambda w: _foreign(w, kid=w.kid), "signature"),
    "payload changed after signing": (_tampered_payload, "signature"),
    "proof that does not match its checkpoint": (_bent_proof, "log_inclusion"),
    "proof for another leaf index": (lambda w: _moved(w, leaf_index=3), "log_inclusion"),
    "tree size that is not the checkpoint's": (lambda w: _moved(w, tree_size=5, leaf_index=4), "log_inclusion"),
    "proof hashes that are not base64": (lambda w: _moved(w, inclusion=["not base64!"]), "log_inclusion"),
    "another receipt's proof": (lambda w: {**w.bundle(), "receipt": _foreign(w, kid=w.kid)}, "log_inclusion"),
    "checkpoint signed by another key": (lambda w: w.bundle(log_private=Ed25519PrivateKey.generate()),
                                         "checkpoint_signature"),
    "garbled checkpoint": (lambda w: _moved(w, checkpoint="not a checkpoint"), "checkpoint_signature"),
    "a waiting period": (lambda w: sign({**w.claims, "reentry": {**w.claims["reentry"], "waiting_period_days": 7}},
                                        w.key), "claims"),
    "v 2": (lambda w: sign({**w.claims, "v": 2}, w.key), "claims"),
    "an outcome that is a list": (lambda w: sign({**w.claims, "revocations": [
        {"network": "acme", "outcome": ["revoked"], "at": "2026-11-25T19:00:03Z"}]}, w.key), "claims"),
    "a note that is not text": (lambda w: sign({**w.claims, "revocations": [
        {"network": "acme", "outcome": "revoked", "at": "2026-11-25T19:00:03Z", "note": 7}]}, w.key), "claims"),
    "a local time": (lambda w: sign({**w.claims, "completed_at": "2026-11-25T20:00:42+01:00"}, w.key), "claims"),
    "a missing field": (lambda w: sign({k: v for k, v in w.claims.items() if k != "purged"}, w.key), "claims"),
    "a duplicated field": (lambda w: _signed_raw(w, json.dumps(w.claims).encode()[:-1] + b',"residual_rows":5}'),
                           "claims"),
    "a payload that is not JSON": (lambda w: _signed_raw(w, b"deleted everything, honest"), "claims"),
    "owner proof for someone else": (
        lambda w: {**w.bundle(), "owner_proof": {"salt": owner.b64url(owner.salt(w.k)),
                                                 "identities": ["email:someone@example.org"]}}, "owner"),
    "owner proof with a bad salt": (lambda w: {**w.bundle(), "owner_proof": {"salt": "!!", "identities": []}},
                                    "owner"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_invalid_with_one_line_per_problem(world, case):
    build, check = BAD_INPUTS[case]
    report = verify.verify(build(world), world.jwks, world.log_key)
    assert not report.valid
    assert report.checks[check] is False, report.problems
    assert any(p.startswith(check + ": ") for p in report.problems), report.problems
    assert all("\n" not in p and len(p) < 300 for p in report.problems)
    assert report.to_json()["valid"] is False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


@st.composite
def mangled_bundles(draw, world_bundle):
    """A real bundle with one member, somewhere inside, replaced by an arbitrary JSON value."""
    bundle = json.loads(json.dumps(world_bundle))
    path = draw(st.sampled_from([("receipt",), ("log",), ("owner_proof",), ("log", "leaf_index"),
                                 ("log", "tree_size"), ("log", "inclusion"), ("log", "checkpoint"),
                                 ("owner_proof", "salt"), ("owner_proof", "identities")]))
    target = bundle
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = draw(json_values)
    return bundle


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_garbage_never_raises(world, data):
    given_input = data.draw(st.one_of(
        st.text(max_size=200), st.binary(max_size=200), json_values,
        st.text(alphabet="abcAB09-_.=", max_size=200),
        mangled_bundles(world.bundle(with_owner=True)),
    ))
    report = world.verifier.verify(given_input)
    if not report.valid:
        assert report.problems
    assert all("\n" not in p for p in report.problems)


def test_each_failed_check_is_reported(world):
    report = world.verifier.verify({**_bent_proof(world), "receipt": _foreign(world, kid=world.kid)})
    checks = {p.split(":")[0] for p in report.problems}
    assert checks == {"signature", "log_inclusion"}


def test_a_kid_that_is_not_the_thumbprint_is_invalid(world):
    jwks = {"keys": [{**public_jwk(world.key), "kid": "my-key"}]}
    report = verify.verify(sign(world.claims, world.key, kid="my-key"), jwks)
    assert report.checks["signature"] is True
    assert report.checks["kid_thumbprint"] is False and not report.valid


def test_odd_jwks_members_are_ignored(world):
    jwks = {"keys": [{**public_jwk(OKPKey.generate_key("Ed25519")), "alg": ["x"]}, {"kty": "OKP", "crv": "Ed25519",
                                                                                   "x": 7}, "nonsense", None,
                     {**public_jwk(world.key), "use": "enc"}, public_jwk(world.key)]}
    assert verify.verify(world.jws, jwks).valid
    assert not verify.verify(world.jws, {"keys": jwks["keys"][:-1]}).valid


def test_two_keys_under_one_kid_are_not_trusted(world):
    other = OKPKey.generate_key("Ed25519")
    jwks = {"keys": [public_jwk(world.key), {**public_jwk(other), "kid": world.kid}]}
    report = verify.verify(world.jws, jwks)
    assert not report.valid and report.checks["signature"] is False


@pytest.mark.parametrize("jwks", [None, [], {}, {"keys": "no"}, {"keys": [{}] * (verify.MAX_JWKS_KEYS + 1)}])
def test_an_unusable_jwks_is_a_usage_error(jwks):
    with pytest.raises(verify.UsageError):
        verify.verify("x", jwks)


def test_a_bad_log_key_is_a_usage_error(world):
    with pytest.raises(verify.UsageError):
        verify.Verifier(world.jwks, "not a key")


def test_a_verifier_reused_for_many_receipts_caches_nothing_wrongly(world):
    good, bad = world.bundle(), world.bundle(log_private=Ed25519PrivateKey.generate())
    for _ in range(3):
        assert world.verifier.verify(good).valid
        assert not world.verifier.verify(bad).valid


def test_the_benchmark_helper_reports_a_ratio():
    result = verification.benchmark(seconds=0.05, tree_size=50)
    assert result["raw_ed25519_per_second"] > 0 and result["receipts_per_second"] > 0
    assert result["bundles_per_second"] > 0 and result["ratio"] > 0 and result["bundle_ratio"] > 0


# --- the command --------------------------------------------------------------------------------

def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "erasure.verify", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def files(world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify")
    (folder / "jwks.json").write_text(json.dumps(world.jwks))
    (folder / "log.key").write_text(world.log_key + "\n")
    (folder / "receipt.jws").write_text(world.jws + "\n")
    (folder / "bundle.json").write_text(json.dumps(world.bundle(with_owner=True)))
    return folder


def test_the_command_accepts_a_valid_bundle(files, world):
    result = run_cli(str(files / "bundle.json"), "--jwks", str(files / "jwks.json"), "--log-key", world.log_key)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.decode()
    assert out.startswith("VALID receipt " + world.claims["receipt_id"])
    assert "checkpoint: signed by the log key" in out and "owner proof: ok" in out


def test_the_command_reads_the_log_key_from_a_file_and_the_receipt_from_stdin(files, world):
    result = run_cli("-", "--jwks", str(files / "jwks.json"), "--log-key", str(files / "log.key"),
                     stdin=(files / "bundle.json").read_bytes())
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_command_says_when_the_checkpoint_signature_was_not_checked(files):
    result = run_cli(str(files / "bundle.json"), "--jwks", str(files / "jwks.json"))
    assert result.returncode == 0
    assert "signature NOT checked" in result.stdout.decode()


def test_the_command_prints_json_on_request(files):
    result = run_cli(str(files / "receipt.jws"), "--jwks", str(files / "jwks.json"), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["checks"]["signature"] is True


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_the_command_says_invalid_for_bad_input(world, files, tmp_path, case):
    build, check = BAD_INPUTS[case]
    given = build(world)
    path = tmp_path / "input"
    if isinstance(given, dict):
        path.write_text(json.dumps(given))
    elif isinstance(given, bytes):
        path.write_bytes(given)
    else:
        path.write_text(given)
    result = run_cli(str(path), "--jwks", str(files / "jwks.json"), "--log-key", world.log_key)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 1, out + err
    assert f"INVALID {check}: " in out
    assert "Traceback" not in out + err and err == ""


def test_the_command_prints_one_line_per_failed_check(world, files, tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({**_bent_proof(world), "receipt": _foreign(world, kid=world.kid)}))
    result = run_cli(str(path), "--jwks", str(files / "jwks.json"), "--log-key", world.log_key)
    lines = [line for line in result.stdout.decode().splitlines() if line.startswith("INVALID")]
    assert result.returncode == 1
    assert [line.split(":")[0] for line in lines] == ["INVALID signature", "INVALID log_inclusion"]


@pytest.mark.parametrize("args", [
    ["missing.jws", "--jwks", "{jwks}"],
    ["{receipt}", "--jwks", "missing.json"],
    ["{receipt}", "--jwks", "{receipt}"],  # not JSON
    ["{receipt}", "--jwks", "{folder}"],  # a directory
    ["{receipt}", "--jwks", "{bundle}"],  # JSON, but not a JWKS
    ["{receipt}", "--jwks", "file:///etc/passwd"],
    ["{receipt}", "--jwks", "http://127.0.0.1:9/jwks.json"],  # nothing listens on the discard port
    ["{receipt}", "--jwks", "{jwks}", "--log-key", "not-a-key"],
    ["{receipt}", "--jwks", "{jwks}", "--log-key", "{receipt}"],
    ["{receipt}"],
    ["--jwks", "{jwks}"],
    ["{receipt}", "--jwks", "{jwks}", "--unknown"],
])
def test_usage_errors_exit_2(files, args):
    paths = {"jwks": files / "jwks.json", "receipt": files / "receipt.jws", "bundle": files / "bundle.json",
             "folder": files}
    result = run_cli(*(a.format(**paths) for a in args))
    assert result.returncode == 2, result.stdout + result.stderr
    assert b"Traceback" not in result.stderr and result.stderr.strip()


class _Serve(http.server.BaseHTTPRequestHandler):
    bodies: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802
        body = self.bodies.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def jwks_server(world):
    _Serve.bodies = {"/.well-known/jwks.json": json.dumps(world.jwks).encode(),
                     "/huge.json": b" " * (verify.MAX_JWKS_BYTES + 10)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_jwks_can_come_from_a_url(files, jwks_server):
    result = run_cli(str(files / "receipt.jws"), "--jwks", jwks_server + "/.well-known/jwks.json")
    assert result.returncode == 0, result.stdout + result.stderr
    for path in ("/huge.json", "/missing.json"):
        result = run_cli(str(files / "receipt.jws"), "--jwks", jwks_server + path)
        assert result.returncode == 2, result.stdout + result.stderr


# --- isolation: only the standard library and cryptography ---------------------------------------

SERVICE_PACKAGES = ("flask", "flask_smorest", "werkzeug", "sqlalchemy", "alembic", "joserfc", "marshmallow", "authlib",
                    "app", "consent", "demo")


def test_the_command_runs_with_the_service_packages_blocked(files, world):
    """Every service package is made unimportable; the verifier must not notice."""
    code = (
        "import sys\n"
        f"for name in {SERVICE_PACKAGES!r}:\n"
        "    sys.modules[name] = None\n"
        "from erasure.verify import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run([sys.executable, "-E", "-s", "-c", code, str(files / "bundle.json"), "--jwks",
                             str(files / "jwks.json"), "--log-key", world.log_key],
                            cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_verifier_loads_nothing_but_the_stdlib_and_cryptography():
    code = (
        "import sys, sysconfig\n"
        "before = set(sys.modules)\n"
        "import erasure.verify\n"
        "stdlib = sysconfig.get_paths()['stdlib']\n"
        "third = sorted({name.split('.')[0] for name, module in sys.modules.items()\n"
        "                if name not in before and getattr(module, '__file__', None)\n"
        "                and not module.__file__.startswith(stdlib)})\n"
        "print(' '.join(third))\n"
    )
    env = {"PATH": os.environ.get("PATH", "")}
    result = subprocess.run([sys.executable, "-E", "-s", "-c", code], cwd=ROOT, env=env, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.decode().split()) <= {"erasure", "cryptography", "_cffi_backend"}
