"""A small authorized agent of the Data Rights Protocol 1.0, as another organisation would write one: Ed25519 keys
from `cryptography`, signed text/plain bodies, a bearer token from the key setup, and a loopback server that
receives status callbacks."""
from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class Agent:
    def __init__(self, base: str, agent_id: str, business_id: str = "127.0.0.1") -> None:
        self.base = base
        self.agent_id = agent_id
        self.business_id = business_id
        self.key = Ed25519PrivateKey.generate()
        self.token: str | None = None
        self.http = requests.Session()

    @property
    def verify_key_hex(self) -> str:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def envelope(self, minutes: float = 10, issued: dt.datetime | None = None, **fields) -> dict:
        issued = issued or dt.datetime.now(dt.UTC)
        return {"agent-id": self.agent_id, "business-id": self.business_id, "issued-at": issued.isoformat(),
                "expires-at": (issued + dt.timedelta(minutes=minutes)).isoformat(), **fields}

    def sign(self, message: dict | bytes, key: Ed25519PrivateKey | None = None) -> bytes:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode()
        return base64.b64encode((key or self.key).sign(raw) + raw)

    def headers(self, token: str | None = None) -> dict:
        token = token or self.token
        return {"Content-Type": "text/plain", **({"Authorization": f"Bearer {token}"} if token else {})}

    def setup(self, body: bytes | None = None, agent_id: str | None = None) -> requests.Response:
        answer = self.http.post(f"{self.base}/drp/v1/agent/{agent_id or self.agent_id}",
                                data=body if body is not None else self.sign(self.envelope(**{"drp.version": "1.0"})),
                                headers={"Content-Type": "text/plain"}, timeout=10)
        if answer.status_code == 200 and body is None:
            self.token = answer.json()["token"]
        return answer

    def info(self, agent_id: str | None = None, token: str | None = None) -> requests.Response:
        return self.http.get(f"{self.base}/drp/v1/agent/{agent_id or self.agent_id}", headers=self.headers(token),
                             timeout=10)

    def request_message(self, exercise: str, **claims) -> dict:
        return self.envelope(**{"drp.version": "1.0", "exercise": exercise, "regime": "ccpa", **claims})

    def exercise(self, exercise: str, **claims) -> requests.Response:
        return self.post(self.sign(self.request_message(exercise, **claims)))

    def post(self, body: bytes, token: str | None = None) -> requests.Response:
        return self.http.post(f"{self.base}/drp/v1/data-rights-request", data=body, headers=self.headers(token),
                              timeout=30)

    def status(self, request_id: str, token: str | None = None) -> requests.Response:
        return self.http.get(f"{self.base}/drp/v1/data-rights-request/{request_id}", headers=self.headers(token),
                             timeout=10)

    def revoke(self, request_id: str, reason: str = "I changed my mind") -> requests.Response:
        return self.http.delete(f"{self.base}/drp/v1/data-rights-request/{request_id}",
                                data=self.sign({"reason": reason}), headers=self.headers(), timeout=10)


class CallbackReceiver:
    """The agent's status_callback endpoint, on a loopback port: it keeps every body POSTed to it.
    `fail_next` makes it answer 503 that many times first, as an agent briefly down."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_response(503)
                else:
                    receiver.received.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/drp/status"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
