"""Offline verification against raw Ed25519: the receipt and bundle rates `make bench` compares."""
from __future__ import annotations

import base64
import hashlib
import json
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from erasure.verifier import merkle, note
from erasure.verifier.verify import RECEIPT_TYPE, Verifier, b64url, jwk_thumbprint


def sample_claims(now: int = 1764100000) -> dict:
    """A payload shaped like a real receipt, for benchmarks and tests."""
    return {
        "v": 1, "receipt_id": "0b6c7a4e-2f1d-4c3b-9a8e-7d6f5e4c3b2a", "iss": "http://127.0.0.1:5000", "iat": now,
        "request_id": "5f0e9d8c-7b6a-4594-8372-615049382716", "scope": "all",
        "subject_commitment": b64url(hashlib.sha256(b"sample").digest()),
        "requested_at": "2026-11-25T19:00:00Z", "deadline": "2026-12-25T19:00:00Z",
        "completed_at": "2026-11-25T19:00:42Z",
        "revocations": [{"network": "acme", "outcome": "revoked", "at": "2026-11-25T19:00:03Z"}],
        "purged": [{"store": "platform", "category": "posts", "rows": 120},
                   {"store": "platform", "category": "endorsements", "rows": 3}],
        "residual_rows": 0,
        "retained": [{"what": "suppression entry", "form": "HMAC-SHA256 of each identity",
                      "why": "so that the opt-out holds if the data comes in again"}],
        "reentry": {"waiting_period_days": 0, "conditions": [],
                    "statement": "You can come back at any time, starting now. Nothing about leaving is held "
                                 "against you."},
    }


def sign_receipt(claims: dict, private_key: Ed25519PrivateKey, kid: str | None = None, alg: str = "Ed25519") -> str:
    """A compact JWS over `claims` with the receipt header: the benchmark's stand-in for the service."""
    if kid is None:
        kid = jwk_thumbprint(public_jwk(private_key.public_key()))
    header = json.dumps({"alg": alg, "kid": kid, "typ": RECEIPT_TYPE}, separators=(",", ":")).encode()
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(private_key.sign(signing_input.encode()))}"


def public_jwk(public_key: Ed25519PublicKey) -> dict:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public_key.public_bytes_raw())}
    return {**jwk, "kid": jwk_thumbprint(jwk), "alg": "Ed25519", "use": "sig"}


def benchmark(seconds: float = 1.0, tree_size: int = 1000) -> dict:
    """Receipts (and bundles) verified per second by a Verifier, against raw Ed25519 verifications per
    second, timed in interleaved rounds of the same run so that a noisy machine still gives a fair ratio.
    """
    receipt_key, log_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = receipt_key.public_key()
    jws = sign_receipt(sample_claims(), receipt_key)
    origin = "bench.example/ownstory/receipts"
    nodes: dict[tuple[int, int], bytes] = {}

    def get(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    leaf_index = tree_size // 2
    for index in range(tree_size):
        leaf = merkle.leaf_hash(jws.encode() if index == leaf_index else index.to_bytes(8, "big"))
        for level, position, value in merkle.nodes_to_store(index, leaf, get):
            nodes[(level, position)] = value

    checkpoint = note.sign_note(note.checkpoint_body(origin, tree_size, merkle.root(tree_size, get)), origin, log_key)
    bundle = {"receipt": jws, "log": {
        "leaf_index": leaf_index, "tree_size": tree_size, "checkpoint": checkpoint,
        "inclusion": [base64.b64encode(h).decode() for h in merkle.inclusion_proof(leaf_index, tree_size, get)]}}
    verifier = Verifier({"keys": [public_jwk(public)]}, note.verifier_key(origin, log_key.public_key()))
    assert verifier.verify(jws).valid and verifier.verify(bundle).valid

    signing_input, signature = jws.rsplit(".", 1)[0].encode(), receipt_key.sign(jws.rsplit(".", 1)[0].encode())

    def raw_round(n: int) -> None:
        for _ in range(n):
            public.verify(signature, signing_input)

    def receipt_round(n: int) -> None:
        for _ in range(n):
            verifier.verify(jws)

    def bundle_round(n: int) -> None:
        for _ in range(n):
            verifier.verify(bundle)

    rounds = {"raw": raw_round, "receipt": receipt_round, "bundle": bundle_round}
    best = dict.fromkeys(rounds, float("inf"))  # the fastest round of each: the one least disturbed by others
    per_round = 100
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best["raw"] == float("inf"):
        for name, run in rounds.items():
            started = time.perf_counter()
            run(per_round)
            best[name] = min(best[name], time.perf_counter() - started)
    rate = {name: per_round / elapsed for name, elapsed in best.items()}
    return {"raw_ed25519_per_second": rate["raw"], "receipts_per_second": rate["receipt"],
            "bundles_per_second": rate["bundle"], "ratio": rate["receipt"] / rate["raw"],
            "bundle_ratio": rate["bundle"] / rate["raw"]}
