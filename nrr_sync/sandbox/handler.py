"""The HTTP side of the sandbox: Stripe's URLs, keys and headers, and the admin
endpoints, answered from a ``Served`` (the server's ``Sandbox``)."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from .. import STRIPE_API_VERSION
from .api_requests import (
    API_KEYS,
    ROUTES,
    ApiError,
    mask_key,
    parse_params,
)
from .shapes import dumps


class Served(Protocol):
    """What the handler asks of the server's state (``server.Sandbox`` is one): the world
    and its stores, the knobs, the counters, and the answer to one API request."""

    world: Any
    stores: dict
    knobs: Any

    def admit(self, template: str) -> str | None: ...
    def handle(
        self, handler: str, match: Any, params: dict, account_id: str, key: str
    ) -> bytes: ...
    def request_started(self) -> None: ...
    def request_finished(self) -> None: ...
    def count_status(self, status: int) -> None: ...
    def next_request_id(self) -> str: ...
    def advance(self, seconds: int) -> dict: ...
    def stats(self) -> dict: ...
    def reset_stats(self) -> None: ...
    def set_knobs(self, **changes) -> dict: ...


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers and body leave in one write
    server_version = "nrr-sync-sandbox"
    sandbox: Served  # set on the subclass made per server

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def date_time_string(self, timestamp=None):
        return formatdate(self.sandbox.world.now, usegmt=True)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = b""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = self.rfile.read(length)
        if url.path.startswith("/_sandbox/"):
            self.admin(method, url.path, url.query, body)
            return
        self.sandbox.request_started()
        try:
            self.serve_api(method, url, body)
        finally:
            self.sandbox.request_finished()

    def serve_api(self, method: str, url, body: bytes) -> None:
        template, handler, match = "unknown", None, None
        for pattern, route_template, route_handler in ROUTES:
            match = pattern.match(url.path)
            if match:
                template, handler = route_template, route_handler
                break
        sandbox = self.sandbox
        fate = sandbox.admit(template)
        latency = sandbox.knobs.latency_ms
        if latency:
            time.sleep(latency / 1000)
        if fate == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fate is not None and fate.startswith("fault"):
            status = 503 if fate == "fault_503" else 500
            error = ApiError(
                status,
                "An unknown error occurred" if status == 500 else "Service temporarily unavailable",
                type="api_error",
                headers={"Stripe-Should-Retry": "true"} if status == 500 else {},
            )
            self.send_error_body(error)
            return
        if fate is not None:
            reason = fate.split(":", 1)[1]
            self.send_error_body(
                ApiError(
                    429,
                    "Request rate limit exceeded. You can learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                    headers={"Stripe-Rate-Limited-Reason": reason},
                )
            )
            return
        try:
            key = self.authenticate()
            if handler is None or method != "GET":
                raise ApiError(
                    404,
                    f"Unrecognized request URL ({method}: {url.path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                )
            account_id = self.account(key)
            params = parse_params(url.query)
            payload = sandbox.handle(handler, match, params, account_id, key)
        except ApiError as error:
            self.send_error_body(error)
            return
        self.send_json(200, payload)

    def authenticate(self) -> str:
        header = self.headers.get("Authorization") or ""
        key = ""
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[len("Basic ") :]).decode().split(":", 1)[0]
            except ValueError:
                key = ""
        if not key:
            raise ApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                "details, or we can help at https://support.stripe.com/.",
            )
        if key not in API_KEYS:
            raise ApiError(401, f"Invalid API Key provided: {mask_key(key)}")
        return key

    def account(self, key: str) -> str:
        account_ids = self.sandbox.world.account_ids
        requested = self.headers.get("Stripe-Account")
        if requested is None or requested == "":
            return account_ids[0]
        if requested not in self.sandbox.stores:
            raise ApiError(
                403,
                f"The provided key '{mask_key(key)}' does not have access to account "
                f"'{requested}' (or that account does not exist). Application access may "
                "have been revoked.",
                code="account_invalid",
            )
        return requested

    def send_error_body(self, error: ApiError) -> None:
        self.send_json(error.status, dumps({"error": error.body}), error.headers)

    def send_json(self, status: int, payload: bytes, headers: dict | None = None) -> None:
        sandbox = self.sandbox
        sandbox.count_status(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", sandbox.next_request_id())
        self.send_header("Stripe-Version", self.headers.get("Stripe-Version") or STRIPE_API_VERSION)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- admin -----------------------------------------------------------------------

    def admin(self, method: str, path: str, query: str, body: bytes) -> None:
        fields = dict(parse_qsl(query))
        if body:
            text = body.decode()
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                fields.update(json.loads(text))
            else:
                fields.update(parse_qsl(text))
        sandbox = self.sandbox
        try:
            if method == "POST" and path == "/_sandbox/advance":
                seconds = 0
                if "days" in fields:
                    seconds += round(float(fields["days"]) * 86400)
                if "seconds" in fields:
                    seconds += int(fields["seconds"])
                if seconds <= 0:
                    raise ApiError(400, "Pass days or seconds, more than 0.", param="days")
                self.send_json(200, dumps(sandbox.advance(seconds)))
            elif method == "GET" and path == "/_sandbox/stats":
                self.send_json(200, dumps(sandbox.stats()))
            elif method == "POST" and path == "/_sandbox/stats/reset":
                sandbox.reset_stats()
                self.send_json(200, dumps(sandbox.stats()))
            elif method == "POST" and path == "/_sandbox/faults":
                self.send_json(200, dumps(sandbox.set_knobs(**fields)))
            else:
                raise ApiError(404, f"Unrecognized sandbox URL ({method}: {path}).")
        except (ValueError, TypeError) as error:
            self.send_error_body(ApiError(400, f"Bad request: {error}"))
        except ApiError as error:
            self.send_error_body(error)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, *args, **kwargs):
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hung up (a run cut its requests) is not the server's error
        super().handle_error(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on kept-alive clients too: a stopped server answers nobody."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
