"""LiveServer: runs any WSGI app on a real loopback port in a thread, and can take it down and up again."""

from __future__ import annotations

import threading
from collections.abc import Callable

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    # Access lines would carry query strings (codes, state) into test output; errors still log.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LiveServer:
    """A WSGI app on http://<host>:<port>. Stopping it refuses connections, as a network that is down."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> None:
        self.app = app
        self.host = host
        self.port = port  # 0 until started: the OS picks a free port, then restarts reuse it
        self.quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LiveServer:
        if self._server is not None:
            return self
        handler = _QuietHandler if self.quiet else None
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=handler)
        self.port = self._server.server_port
        # A short poll interval makes stop() quick: shutdown() waits for the loop's next wake-up.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"live-server-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # stop accepting; requests already running finish in their own threads
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LiveServer {self.host}:{self.port or '?'} {state}>"


def serve(app: Callable, host: str = "127.0.0.1", port: int = 0) -> LiveServer:
    """Start app on a free loopback port; use the result as a context manager or call .stop()."""
    return LiveServer(app, host, port).start()
