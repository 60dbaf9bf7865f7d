"""Signing Ownstory's calls to the platform's own services: HTTP Message Signatures (RFC 9421), Ed25519.

The key is the current receipt-signing key, so a service checks a call against the same JWKS an auditor
checks a receipt against (`/.well-known/jwks.json`), with nothing more to publish or rotate. A signature
cannot pass for a receipt, nor a receipt for a signature: an RFC 9421 signature base (lines of quoted
component names) and a JWS signing input (two base64url parts) never look alike, and every signature
here carries the tag below. The README's "Erasing in the platform's own services" is the service
author's side of this.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

TAG = "ownstory-erasure"  # signed: a service refuses a signature made for anything else
LABEL = "ownstory"
LIFETIME = dt.timedelta(minutes=5)  # `expires`: a captured call cannot be replayed after this
WITH_BODY = ("@method", "@target-uri", "content-type", "content-digest")
WITHOUT_BODY = ("@method", "@target-uri")

KeySource = Callable[[], tuple[str, Ed25519PrivateKey]]  # (kid, key): read at each call, so a rotation takes at once


class RequestSigner:
    """Adds Content-Digest, Signature-Input and Signature to a prepared request."""

    def __init__(self, keys: KeySource, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.keys = keys
        self.clock = clock

    def sign(self, request: requests.PreparedRequest) -> None:
        kid, private = self.keys()
        signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                                   key_resolver=MappingKeyResolver(public_keys={}, private_keys={kid: private}))
        now = self.clock()
        body = request.body.encode() if isinstance(request.body, str) else request.body
        if body is not None and not isinstance(body, bytes):
            raise TypeError("only a body held in memory can be signed")  # our JSON bodies always are
        signer.sign(request, key_id=kid, created=now, expires=now + LIFETIME, tag=TAG, label=LABEL,
                    covered_component_ids=WITH_BODY if body is not None else WITHOUT_BODY, body=body)
