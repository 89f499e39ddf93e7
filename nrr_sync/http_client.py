"""The HTTP client under the Stripe SDK: it never follows a redirect, and every request
has an overall deadline.

``requests`` follows redirects by default and its timeout is per read, so a server that
answers one byte every few seconds would hold a run forever. Here a redirect comes back
as the 3xx it is (the caller refuses it), and one watchdog thread cuts the connection
of any request still running at its deadline; that request then fails like a timeout
(and is retried like one). The SDK's debug log of each answer is formatted only when it
is printed (``sdk_formats_logs_only_when_logged``).

``requests`` also reads the environment on every request, and with it a ``.netrc``
login, which it sends in place of the ``Authorization`` header the SDK set: a
``default`` entry made every request carry someone else's credentials. Here the
sessions do not read the environment; the proxies it names (``HTTPS_PROXY``,
``NO_PROXY``, …) are looked up once per client and origin and passed explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

import requests
import stripe
import urllib3
from requests.adapters import HTTPAdapter

REQUEST_TIMEOUT = (10, 60)  # connect, each read (seconds)
REQUEST_DEADLINE_SECONDS = 120.0  # a whole request: connect, headers and body
CANCEL_CHECK_SECONDS = 0.2  # how soon a cancelled run's requests in flight are cut
CHUNK_BYTES = 1 << 16


class DeadlineExceeded(requests.exceptions.Timeout):
    """A request still unfinished at its overall deadline."""


class _Watch:
    """One request in flight: its deadline, its run's cancel event and the connection
    carrying it."""

    def __init__(self, seconds: float, cancel: threading.Event | None = None):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cancel = cancel
        self.connection = None
        self.expired = False

    def due(self, now: float) -> bool:
        return now >= self.deadline or (self.cancel is not None and self.cancel.is_set())

    def expire(self) -> None:
        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            # Wakes the read blocked on it, in whichever thread.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One thread that expires the requests past their deadline."""

    def __init__(self):
        self._wake = threading.Condition()
        self._watches: set[_Watch] = set()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch) -> None:
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="nrr-sync-request-deadline", daemon=True
                )
                self._thread.start()
            if not self._watches:
                self._wake.notify()
            self._watches.add(watch)

    def remove(self, watch: _Watch) -> None:
        with self._wake:
            self._watches.discard(watch)

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                for watch in [w for w in self._watches if w.due(now)]:
                    self._watches.discard(watch)
                    watch.expire()
                # Every CANCEL_CHECK_SECONDS while requests are in flight: a request past
                # its deadline, or of a run that failed or was stopped, is cut (a slow
                # answer would otherwise hold a stopped run's process until its deadline).
                self._wake.wait(CANCEL_CHECK_SECONDS if self._watches else None)


_WATCHDOG = _Watchdog()
_current = threading.local()  # the calling thread's _Watch while it makes a request


class _Watched:
    """A connection that tells the calling thread's watch it carries its request."""

    def request(self, *args, **kwargs):
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.connection = self
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


class StrictRequestsClient(stripe.RequestsClient):
    """The SDK's ``requests`` client without redirects and with an overall deadline.
    ``cancel``: once set, the requests in flight are cut."""

    def __init__(self, cancel: threading.Event | None = None, **kwargs):
        super().__init__(timeout=kwargs.pop("timeout", REQUEST_TIMEOUT), **kwargs)
        self._cancel = cancel
        self._environment_proxies: dict[str, dict] = {}  # by origin (scheme://host:port)

    def request(self, method, url, headers, post_data=None):
        watch = _Watch(REQUEST_DEADLINE_SECONDS, self._cancel)
        _current.watch = watch
        _WATCHDOG.add(watch)
        response = None
        try:
            response = self._session_here().request(
                method,
                url,
                headers=headers,
                data=post_data,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
                **self._options(url),
            )
            return _read_body(response, watch), response.status_code, response.headers
        except Exception as error:  # noqa: BLE001 - classified by the SDK, as it would
            if response is not None:
                response.close()
            late = DeadlineExceeded(f"no complete answer within {watch.seconds:g} s")
            self._handle_request_error(late if watch.expired else error)  # raises
        finally:
            _current.watch = None
            _WATCHDOG.remove(watch)

    def _options(self, url: str) -> dict:
        return {
            "verify": stripe.ca_bundle_path if self._verify_ssl_certs else False,
            "proxies": self._proxy or self._proxies_from_environment(url),
        }

    def _proxies_from_environment(self, url: str) -> dict:
        origin = "/".join(url.split("/", 3)[:3])
        proxies = self._environment_proxies.get(origin)
        if proxies is None:
            proxies = requests.utils.get_environ_proxies(origin)
            self._environment_proxies[origin] = proxies
        return proxies

    def _session_here(self) -> requests.Session:
        session = getattr(self._thread_local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no .netrc login; proxies: _proxies_from_environment
            adapter = _WatchedAdapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._thread_local.session = session
        return session


def _read_body(response: requests.Response, watch: _Watch) -> bytes:
    chunks = []
    for chunk in response.iter_content(CHUNK_BYTES):
        # The watchdog cuts a connection it knows; this catches one it does not (a proxy).
        if watch.expired or time.monotonic() > watch.deadline:
            raise DeadlineExceeded(f"no complete answer within {watch.seconds:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


def sdk_formats_logs_only_when_logged() -> None:
    """The SDK formats every response body into a debug log line (a regex search and a
    ``repr`` over the 400-600 KB of a page of 100 invoices, about a sixth of the CPU of
    such a request, benchmarks/page_cpu.py) before its logger decides to drop it.
    Format only when the line would be printed (``STRIPE_LOG`` / ``stripe.log``) or
    logged (the ``stripe`` logger's level): the same output, without the cost. Left
    alone if the SDK's internals change."""
    from stripe import _api_requestor, _util

    needed = ("log_debug", "log_info", "logger", "_console_log_level")
    if not all(hasattr(_util, name) for name in needed):
        return

    def when_on(log: Callable, level: int) -> Callable:
        def log_if_on(message, **params):
            if _util._console_log_level() is not None or _util.logger.isEnabledFor(level):
                log(message, **params)

        return log_if_on

    if getattr(_api_requestor, "log_debug", None) is _util.log_debug:
        _api_requestor.log_debug = when_on(_util.log_debug, logging.DEBUG)
    if getattr(_api_requestor, "log_info", None) is _util.log_info:
        _api_requestor.log_info = when_on(_util.log_info, logging.INFO)
