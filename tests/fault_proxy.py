"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real S3 endpoint (moto_server).

Requests pass through unchanged unless a :class:`Fault` matches: then the proxy answers 503 (plain or
``SlowDown``), 403 ``AccessDenied``, drops the connection before answering, or sends half the body and drops
it, a chosen number of times. Tests use it to drive the sources' own retry policy over real sockets.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

FaultKind = Literal["503", "slowdown", "access_denied", "drop", "drop_mid_body"]

_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
_ERROR_BODIES = {
    "503": (503, "ServiceUnavailable", "Please reduce your request rate."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "access_denied": (403, "AccessDenied", "Access Denied"),
}


@dataclass
class Fault:
    """Answer up to ``times`` matching requests with ``kind``; ``hits`` counts how often it fired."""

    kind: FaultKind
    method: str | None = None
    """Match only this HTTP method (``GET``…); ``None`` matches any."""
    target_contains: str | None = None
    """Match only request targets (path + query) containing this, e.g. ``continuation-token``."""
    times: int = 1
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        return (
            self.hits < self.times
            and (self.method is None or self.method == method)
            and (self.target_contains is None or self.target_contains in target)
        )


class FaultProxy:
    """The proxy; use :func:`fault_proxy` to run one for the length of a ``with`` block."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 80
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    def add(
        self, kind: FaultKind, *, method: str | None = None, target_contains: str | None = None, times: int = 1
    ) -> Fault:
        fault = Fault(kind, method=method, target_contains=target_contains, times=times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, unblock handler threads waiting on idle keep-alive connections, and join them all."""
        self._server.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the handler threads (block_on_close)
        self._thread.join(timeout=5)

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, target))
            for fault in self.faults:
                if fault.matches(method, target):
                    fault.hits += 1
                    return fault
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: FaultProxy):
        self.proxy = proxy
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real endpoint, so drops hit pooled connections
    timeout = 10
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.proxy._lock:
            self.server.proxy._connections.add(self.connection)

    def finish(self) -> None:
        with suppress(OSError):
            super().finish()
        with self.server.proxy._lock:
            self.server.proxy._connections.discard(self.connection)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature from the base class
        pass  # keep test output quiet

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = self.server.proxy._take_fault(self.command, self.path)
        if fault is not None and fault.kind in _ERROR_BODIES:
            self._send_error_xml(*_ERROR_BODIES[fault.kind])
            return
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        status, headers, length, payload = self._forward(body)
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault is not None and fault.kind == "drop_mid_body":
            self.wfile.write(payload[: len(payload) // 2])
            self._drop()
            return
        self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], int, bytes]:
        """Status, end-to-end headers, Content-Length (the upstream's for HEAD) and body from upstream."""
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _NOT_FORWARDED]
            head_length = int(response.getheader("Content-Length") or 0)
            length = head_length if self.command == "HEAD" else len(payload)
            return response.status, kept, length, payload
        finally:
            upstream.close()

    def _send_error_xml(self, status: int, code: str, message: str) -> None:
        payload = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


@contextmanager
def fault_proxy(upstream_url: str) -> Iterator[FaultProxy]:
    """Run a :class:`FaultProxy` in front of ``upstream_url`` until the block ends."""
    proxy = FaultProxy(upstream_url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
