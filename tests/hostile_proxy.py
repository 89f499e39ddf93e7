"""A small mutating HTTP proxy between the CLI and the sandbox, for hostile-server tests.

``HostileProxy(sandbox.url)`` forwards every GET to the sandbox. ``proxy.on(path, rule)``
hands the requests for ``path`` (``/v1/invoices``, or a predicate on the path) to
``rule(request) -> Answer``: the rule usually calls ``request.forward()`` (optionally
dropping query parameters) and changes the answer's status, headers, JSON body, or pace
(seconds between bytes, a slow-loris). Point the CLI at ``proxy.url``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

HOP_BY_HOP = {"content-length", "connection", "transfer-encoding", "keep-alive"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    pace: float = 0.0  # seconds between bytes of the whole answer (0: at once)
    pace_for: float = 30.0  # after this many seconds the rest is sent at once

    def json(self):
        return json.loads(self.body)

    def set_json(self, value) -> None:
        self.body = json.dumps(value).encode()


@dataclass
class Request:
    path: str  # without the query
    query: list[tuple[str, str]]
    headers: dict[str, str]
    upstream: str
    number: int  # 1 for the first request of this path, 2 for the next, ...

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)

    def forward(self, *, drop: tuple[str, ...] = ()) -> Answer:
        """The sandbox's answer to this request (without the query parameters ``drop``)."""
        query = [(key, value) for key, value in self.query if key not in drop]
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            url = self.path + (f"?{urlencode(query)}" if query else "")
            connection.request("GET", url, headers=self.headers)
            response = connection.getresponse()
            body = response.read()
            headers = {
                name: value
                for name, value in response.getheaders()
                if name.lower() not in HOP_BY_HOP
            }
            return Answer(response.status, headers, body)
        finally:
            connection.close()


Rule = Callable[[Request], Answer]


@dataclass
class HostileProxy:
    upstream: str
    rules: list[tuple[Callable[[str], bool], Rule]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # paths requested, in order

    def __post_init__(self):
        proxy = self
        self._lock = threading.Lock()

        class Handler(_Handler):
            owner = proxy

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def on(self, path: str | Callable[[str], bool], rule: Rule) -> None:
        matches = path if callable(path) else (lambda requested: requested == path)
        self.rules.append((matches, rule))

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for seen in self.seen if seen == path)

    def answer(self, path: str, query: str, headers: dict[str, str]) -> Answer:
        with self._lock:
            self.seen.append(path)
            number = sum(1 for seen in self.seen if seen == path)
        request = Request(
            path, parse_qsl(query, keep_blank_values=True), headers, self.upstream, number
        )
        for matches, rule in self.rules:
            if matches(path):
                return rule(request)
        return request.forward()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hung up on a paced answer is expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: HostileProxy

    def log_message(self, *args):
        pass

    def do_GET(self):
        target = urlsplit(self.path)
        skip = ("host", "accept-encoding", *HOP_BY_HOP)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        answer = self.owner.answer(target.path, target.query, headers)
        reason = http.client.responses.get(answer.status, "Status")
        head = [f"HTTP/1.1 {answer.status} {reason}"]
        head += [f"{name}: {value}" for name, value in answer.headers.items()]
        head += [f"Content-Length: {len(answer.body)}", "", ""]
        raw = "\r\n".join(head).encode("latin-1") + answer.body
        if not answer.pace:
            self.wfile.write(raw)
            return
        stop_pacing = time.monotonic() + answer.pace_for
        for i in range(len(raw)):
            if time.monotonic() > stop_pacing:
                self.wfile.write(raw[i:])
                return
            self.wfile.write(raw[i : i + 1])
            self.wfile.flush()
            time.sleep(answer.pace)
