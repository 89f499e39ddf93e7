"""Talking to Stripe (docs/operations.md): one client per run, a shared rate limiter,
retries in one place.

Requests go through the official SDK's ``StripeClient.raw_request``: it does the auth,
the pinned API version, the ``Stripe-Account`` header, the encoding and Stripe's error
classes, and hands back the parsed JSON as plain dicts (turning a page of 100 invoices
into ``StripeObject`` trees costs more CPU than the request itself). The SDK's own
retries are off; ``StripeApi.get`` retries with tenacity. Every answer is checked
(``answers.check_answer``) before it is returned: a malformed one is retried like a 5xx.
The HTTP client under the SDK never follows a redirect and gives every request an
overall deadline (``http_client``).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import stripe
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from . import answers, fastjson, http_client
from .config import Config
from .errors import MalformedAnswer, NrrSyncError, StripeAuthError, StripeUnavailableError
from .failures import Failure, _retry_after, endpoint_of, failure_of, is_retryable, redact
from .http_client import StrictRequestsClient
from .pacing import RateLimiter, RequestStats, default_rates
from .window import InFlightWindow

log = logging.getLogger("nrr_sync.stripe")

PAGE_SIZE = 100
MAX_LOCATION = 200  # characters of a redirect's target quoted to the user

_PERMISSION_PATTERN = re.compile(r"'(rak_[a-z0-9_]+)'")
# A host name that does not resolve is retried once (a resolver can hiccup), not N times.
DNS_FAILURE_ATTEMPTS = 2


http_client.sdk_formats_logs_only_when_logged()


class _Retry(Exception):
    """An attempt that failed in a way worth retrying."""

    def __init__(
        self,
        failure: Failure,
        retry_after: float | None,
        malformed: answers.Malformed | None = None,
    ):
        super().__init__(failure.message)
        self.failure = failure
        self.retry_after = retry_after
        self.malformed = malformed


class _Redirected(Exception):
    """The server answered with a redirect, which is never followed."""

    def __init__(self, status: int, location: str):
        super().__init__(f"HTTP {status} to {location}")
        self.status = status
        self.location = location


class StripeApi:
    """The run's Stripe client: ``get`` one path with rate limiting and retries."""

    def __init__(
        self,
        config: Config,
        *,
        api_key: str | None = None,
        checks: Mapping[str, Callable[[dict], None]] | None = None,
        cancel: threading.Event | None = None,
    ):
        """``checks``: the check of each route's objects (``kinds.ANSWER_CHECKS``); without
        them only the job's own answers (events, account) are checked. ``cancel``: once
        set, requests not yet sent fail at once (a caller abandoning its work)."""
        self._api_key = api_key or config.api_key()
        self.checks = checks or answers.JOB_CHECKS
        self._env_name = config.stripe.api_key_env
        self.api_base = config.stripe.api_base.rstrip("/")
        self.max_attempts = config.stripe.retry.max_attempts
        self.max_wait = float(config.stripe.retry.max_wait_seconds)
        rate, endpoint_rate = default_rates(self._api_key, config)
        self.limiter = RateLimiter(rate, endpoint_rate)
        self.window = InFlightWindow(
            self.limiter.budget, self.limiter.global_budget, config.stripe.concurrency
        )
        self.stats = RequestStats()
        self.cancel = cancel or threading.Event()
        self._thread = threading.local()  # seconds this thread waited for the limiter
        self.client = stripe.StripeClient(
            self._api_key,
            base_addresses={"api": self.api_base},
            max_network_retries=0,
            http_client=StrictRequestsClient(cancel=self.cancel),
        )

    def waited_here(self, reset: bool = False) -> float:
        """Seconds the calling thread spent waiting for the rate limiter (since a reset)."""
        waited = getattr(self._thread, "waited", 0.0)
        if reset:
            self._thread.waited = 0.0
        return waited

    def endpoint_budget(self, path: str) -> float:
        return self.limiter.budget(endpoint_of(path))

    def global_budget(self) -> float:
        return self.limiter.global_budget()

    def get(
        self,
        path: str,
        params: dict | None = None,
        *,
        account: str | None = None,
        patient: bool = False,
    ) -> dict:
        """GET ``path`` and return the JSON body; raises an NrrSyncError subclass on failure.
        ``patient``: after every waiting request of its endpoint that is not (waiting_line.py)."""
        return self.get_with_headers(path, params, account=account, patient=patient)[0]

    def get_with_headers(
        self,
        path: str,
        params: dict | None = None,
        *,
        account: str | None = None,
        patient: bool = False,
    ) -> tuple[dict, dict]:
        endpoint = endpoint_of(path)
        retrying = Retrying(
            retry=retry_if_exception_type(_Retry),
            stop=self._stop,
            wait=self._wait,
            # a cancelled run's requests stop waiting for their next attempt at once, so a
            # failed or stopped run does not wait out other requests' backoffs (up to
            # max_wait_seconds) before it can exit
            sleep=self.cancel.wait,
            before_sleep=lambda state: self._before_sleep(endpoint, state),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt_in_window(path, endpoint, params or {}, account, patient)
        except _Retry as error:
            attempts = retrying.statistics.get("attempt_number", self.max_attempts)
            where = f" for account {account}" if account else ""
            if error.malformed is not None:
                raise self._malformed(error.malformed, endpoint, where) from None
            check = (
                " Check stripe.api_base (or NRR_SYNC_STRIPE_API_BASE) and the network."
                if error.failure.status is None
                else ""
            )
            raise StripeUnavailableError(
                f"Stripe at {self.api_base} failed GET {endpoint}{where} {attempts} time(s); "
                f"last error: {redact(error.failure.message, self._api_key)}.{check} "
                "What was fetched is kept; the next run resumes."
            ) from None
        raise AssertionError("unreachable")

    def _attempt_in_window(
        self, path: str, endpoint: str, params: dict, account: str | None, patient: bool
    ):
        """One attempt within the in-flight window; an answer's latency (its time
        without the wait for the rate limiter) tells the window what it needs."""
        if not self.window.enter(endpoint, self.cancel, patient):
            raise NrrSyncError("cancelled")
        latency = None  # failures say nothing about it
        try:
            waited_before, started = self.waited_here(), time.monotonic()
            answer = self._attempt(path, endpoint, params, account, patient)
            latency = time.monotonic() - started - (self.waited_here() - waited_before)
            return answer
        finally:
            self.window.leave(endpoint, latency)

    def _attempt(self, path: str, endpoint: str, params: dict, account: str | None, patient: bool):
        if self.cancel.is_set():
            raise NrrSyncError("cancelled")
        waited = self.limiter.acquire(endpoint, patient)
        self._thread.waited = self.waited_here() + waited
        self.stats.count(self.stats.requests, endpoint)
        options: dict[str, Any] = {"stripe_account": account} if account else {}
        started = time.monotonic()
        try:
            data, headers = self._send(path, params, options)
        except _Redirected as redirect:
            self._log_request(path, redirect.status, {}, started)
            raise self._redirect_refused(redirect, endpoint, account) from None
        except stripe.StripeError as error:
            failure = failure_of(error)
            self._log_request(path, failure.status, error.headers, started)
            if failure.status == 429:
                self.stats.count(self.stats.rate_limited, endpoint)
                self.limiter.rate_limited(endpoint)
            if is_retryable(failure):
                raise _Retry(failure, _retry_after(error.headers)) from None
            raise self._fatal(failure, endpoint, account) from None
        self._log_request(path, 200, headers, started)
        if not isinstance(data, dict):
            raise _Retry(Failure(200, None, None, "a response that is not a JSON object"), None)
        try:
            answers.check_answer(endpoint, params, data, self.checks)
            if endpoint == "/v1/account":
                answers.date_header(headers)  # the data's as-of time: it must be readable
        except answers.Malformed as malformed:
            failure = Failure(200, None, None, f"a malformed answer ({malformed})")
            raise _Retry(failure, None, malformed) from None
        return data, headers

    def _log_request(self, path: str, status: int | None, headers, started: float) -> None:
        """One line per request under --verbose: never a body, never a query."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        request_id = next((v for k, v in (headers or {}).items() if k.lower() == "request-id"), "-")
        log.debug(
            "GET %s -> %s in %.0f ms (request %s)",
            path,
            status if status is not None else "no answer",
            (time.monotonic() - started) * 1000,
            request_id,
        )

    def _send(self, path: str, params: dict, options: dict) -> tuple[object, dict]:
        """One GET through the SDK's requestor (auth, API version, Stripe-Account,
        encoding, HTTP client, Stripe's error classes).

        A success is parsed with orjson (``fastjson``): the SDK's own parse (ordered
        dicts) costs about as much CPU again as the rest of a page of 100 invoices, and
        a backfill on a small machine is bound by CPU as much as by Stripe's rate limit.
        Falls back to the public ``raw_request`` if the SDK's internals ever change.
        """
        requestor = getattr(self.client, "_requestor", None)
        if requestor is None or not hasattr(requestor, "request_raw"):
            response = self.client.raw_request("get", path, **params, **options)
            return response.data, dict(response.headers)
        body, code, headers = requestor.request_raw(
            "get", path, params, options, base_address="api", api_mode="V1"
        )
        if 300 <= code < 400:
            location = next((v for k, v in headers.items() if k.lower() == "location"), "")
            raise _Redirected(code, location or "nowhere (no Location header)")
        if 200 <= code < 300:
            try:
                return fastjson.loads(body), dict(headers)
            except ValueError:
                raise stripe.APIError(
                    "Invalid response body from API", body, code, None, headers
                ) from None
        requestor._interpret_response(body, code, headers, "V1")  # raises Stripe's error
        raise stripe.APIError(f"HTTP {code} without an error", body, code, None, headers)

    def _wait(self, state) -> float:
        # Exponential backoff with full jitter, at least Stripe's Retry-After.
        ceiling = min(self.max_wait, 0.5 * 2 ** (state.attempt_number - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Retry) and error.retry_after:
            wait = max(wait, min(error.retry_after, self.max_wait))
        return wait

    def _stop(self, state) -> bool:
        """After max_attempts; after the second attempt when the host name is unknown."""
        if stop_after_attempt(self.max_attempts)(state):
            return True
        error = state.outcome.exception() if state.outcome else None
        unknown_host = isinstance(error, _Retry) and error.failure.unknown_host
        return unknown_host and state.attempt_number >= DNS_FAILURE_ATTEMPTS

    def _before_sleep(self, endpoint: str, state) -> None:
        """One INFO line per retry, so a run that waits says why (a silent minute of
        retries looks like a hang). None once the run is cancelled: it will not retry."""
        if self.cancel.is_set():
            return
        self.stats.count(self.stats.retries, endpoint)
        error = state.outcome.exception()
        cause = error.failure.message if isinstance(error, _Retry) else str(error)
        if isinstance(error, _Retry) and (error.failure.status or 0) >= 400:
            cause = f"HTTP {error.failure.status}: {cause}"
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "GET %s failed (%s), attempt %d/%d; retrying in %.1f s",
            endpoint,
            redact(cause, self._api_key),
            state.attempt_number,
            self.max_attempts,
            wait,
        )

    def _malformed(
        self, malformed: answers.Malformed, endpoint: str, where: str
    ) -> MalformedAnswer:
        return MalformedAnswer(
            f"Stripe sent a malformed {malformed.subject} at GET {endpoint}{where}: "
            f"{redact(malformed.field, self._api_key)}, in each of {self.max_attempts} "
            "attempt(s). The published database is unchanged; the next run resumes."
        )

    def _redirect_refused(
        self, redirect: _Redirected, endpoint: str, account: str | None
    ) -> StripeUnavailableError:
        where = f" (account {account})" if account else ""
        location = redact(redirect.location, self._api_key)[:MAX_LOCATION]
        return StripeUnavailableError(
            f"Stripe at {self.api_base} answered GET {endpoint}{where} with a redirect "
            f"(HTTP {redirect.status}) to {location!r}; nrr-sync never follows redirects. "
            "Check stripe.api_base (or NRR_SYNC_STRIPE_API_BASE)."
        )

    def _fatal(self, failure: Failure, endpoint: str, account: str | None) -> NrrSyncError:
        message = redact(failure.message, self._api_key)
        where = f" (account {account})" if account else ""
        if failure.status == 401:
            return StripeAuthError(
                f"Stripe rejected the API key in ${self._env_name}{where}: check that it is "
                "a current secret or restricted key of the right account and mode, or create a "
                "restricted key with read access (see docs/operations.md, 'Connecting your Stripe "
                "account')."
            )
        if failure.status == 403 and account and _is_unknown_account(failure):
            return StripeAuthError(
                f"Stripe does not know the account {account} in stripe.accounts, or the key in "
                f"${self._env_name} cannot reach it (GET {endpoint}). Check the account id "
                "(acct_…, in the Dashboard's Connect accounts) and that the key is the "
                "platform's key for it. Stripe said: " + message
            )
        if failure.status == 403:
            permission = _PERMISSION_PATTERN.search(failure.message)
            lacking = (
                f"lacks the permission {permission.group(1)}"
                if permission
                else "lacks a permission"
            )
            return StripeAuthError(
                f"The Stripe key in ${self._env_name} {lacking} needed for GET {endpoint}{where}. "
                f"Give the restricted key read access to it. Stripe said: {message}"
            )
        if failure.status is None or failure.status == 429 or failure.status >= 500:
            return StripeUnavailableError(
                f"Stripe at {self.api_base} failed GET {endpoint}{where} and said not to retry: "
                f"{message}. What was fetched is kept; the next run resumes."
            )
        status = f"HTTP {failure.status}" if failure.status else "error"
        error_class = NotFoundError if failure.status == 404 else NrrSyncError
        return error_class(f"Stripe refused GET {endpoint}{where} ({status}): {message}")

    # Listing helpers ---------------------------------------------------------------

    def list_page(
        self, path: str, params: dict, *, account: str | None, patient: bool = False
    ) -> dict:
        """One page of a list, checked (``answers.check_page``): a list of objects, after
        the cursor asked for, and ``has_more`` only on a page that holds objects."""
        return self.get(path, {"limit": PAGE_SIZE, **params}, account=account, patient=patient)

    def list_all(self, path: str, params: dict, *, account: str | None, after: str | None = None):
        """Every object of a list, page by page (for short lists: lines, items, events)."""
        seen: set[str] = set()
        while True:
            page_params = dict(params)
            if after:
                page_params["starting_after"] = after
            page = self.list_page(path, page_params, account=account)
            ids = [obj["id"] for obj in page["data"]]
            if seen.intersection(ids):
                # Pages that come round again would be read forever.
                raise MalformedAnswer(
                    f"Stripe sent a malformed list page at GET {endpoint_of(path)}: "
                    f"starting_after ({after} led to objects already listed: the cursor "
                    "does not advance). The published database is unchanged."
                )
            seen.update(ids)
            yield from page["data"]
            if not page["has_more"]:
                return
            after = ids[-1]

    def retrieve(
        self, path: str, params: dict | None = None, *, account: str | None
    ) -> dict | None:
        """One object by id; None if Stripe says it no longer exists (404)."""
        try:
            return self.get(path, params, account=account)
        except NotFoundError:
            return None

    def whoami(self) -> tuple[dict, datetime]:
        """The key's own account and the API server's clock (its HTTP Date header)."""
        account, headers = self.get_with_headers("/v1/account")
        return account, self._server_time(headers)

    def server_time(self, account: str | None = None) -> datetime:
        _, headers = self.get_with_headers("/v1/account", account=account)
        return self._server_time(headers)

    def _server_time(self, headers: dict) -> datetime:
        """The data's as-of time. A clock far ahead of ours would date the data (and the
        months reported) in the future: refused rather than believed."""
        now = server_time(headers)
        lead = answers.clock_lead(now)
        if lead is not None:
            raise MalformedAnswer(
                f"Stripe at {self.api_base} says it is {now:%Y-%m-%d %H:%M UTC} (its Date "
                f"header), {lead.days} day(s) ahead of this machine's clock. Check this "
                "machine's clock and stripe.api_base; nothing was landed or published."
            )
        return now


def _is_unknown_account(failure: Failure) -> bool:
    """Stripe's answer to a Stripe-Account header it cannot serve (code account_invalid)."""
    return failure.code == "account_invalid" or "does not have access to account" in (
        failure.message
    )


class NotFoundError(NrrSyncError):
    """Stripe answered 404 (exit 1 unless the caller expects deleted objects)."""


def server_time(headers: dict) -> datetime:
    """The answer's Date header (checked readable by ``StripeApi.get`` for /v1/account)."""
    try:
        return answers.date_header(headers)
    except answers.Malformed as malformed:
        raise MalformedAnswer(f"Stripe sent a malformed {malformed}.") from None
