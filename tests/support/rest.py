"""A REST client for load and fault tests: the shop's API as a customer's program calls it.

It retries what a careful client retries (no answer at all: refused, reset,
timed out; and 503, after its ``Retry-After``, capped) until ``retry_for``
seconds have passed, and records every exchange, retries included, in an
:class:`ExchangeLog` shared by every client made from it. Each HTTP request
carries a fresh ``X-Request-ID`` of the client's own (``client_request_id``,
which the server only logs); the server answers with its own, which it made
the causation id of the events that request published, so a request that got
a 5xx can be checked afterwards for work it committed
(``OutboxEvent.objects.filter(causation_id=exchange.request_id)``).

Thread-safe: the driver's threads share one log and may share clients::

    shop = ShopClient(system.url)
    alice = shop.sign_in("alice", PASSWORD)
    order = alice.place_order([("SKU-1", 2)], ADDRESS, "tok_visa")   # same Idempotency-Key on each retry
    alice.confirm(order.data["id"])
    shop.log.server_errors()                                         # every 5xx, with its request id
"""

import contextlib
import email.utils
import http.client
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RETRIED_STATUSES = frozenset({503})


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and what came back. ``status`` None: no answer (``error`` says why)."""

    method: str
    path: str
    request_id: str  # the server's (its X-Request-ID answer); "" when nothing answered
    status: int | None
    elapsed: float
    started_at: float  # time.time(), to line exchanges up with faults
    attempt: int = 1  # 2 and more: a retry of the same call
    error: str = ""
    client_request_id: str = ""  # the X-Request-ID the client sent


@dataclass
class Reply:
    """The outcome of one call: its last answer, and every exchange it took."""

    status: int | None
    data: Any
    headers: dict[str, str]
    exchanges: list[Exchange]

    @property
    def request_id(self) -> str:
        return self.exchanges[-1].request_id


@dataclass
class ExchangeLog:
    """Every exchange of every client sharing it, in the order they ended."""

    _exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def server_errors(self) -> list[Exchange]:
        """Answers 500 and above, 503 included: each may have committed work (check by request id)."""
        return [e for e in self.exchanges() if e.status is not None and e.status >= 500]

    def unanswered(self) -> list[Exchange]:
        return [e for e in self.exchanges() if e.status is None]

    def statuses(self) -> Counter:
        """How many exchanges ended with each status (None: no answer)."""
        return Counter(e.status for e in self.exchanges())


class ShopClient:
    """The REST API over plain HTTP, one connection per request (no keep-alive to go stale)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        timeout: float = 10.0,
        retry_for: float = 60.0,
        retry_after_cap: float = 5.0,
        log: ExchangeLog | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_for = retry_for
        self.retry_after_cap = retry_after_cap
        self.log = log if log is not None else ExchangeLog()

    def with_token(self, token: str) -> "ShopClient":
        """The same client (same log and retry policy) signed in with another API token."""
        return ShopClient(
            self.base_url,
            token=token,
            timeout=self.timeout,
            retry_for=self.retry_for,
            retry_after_cap=self.retry_after_cap,
            log=self.log,
        )

    def sign_in(self, username: str, password: str) -> "ShopClient":
        """``POST /api/auth/token/``; a client signed in as that user."""
        reply = self.request("POST", "/api/auth/token/", body={"username": username, "password": password})
        assert reply.status == 200, f"sign-in of {username} answered {reply.status}: {reply.data}"
        return self.with_token(reply.data["token"])

    def place_order(
        self, lines: Iterable[tuple[str, int]], address: dict[str, str], token: str, *, idempotency_key: str = ""
    ) -> Reply:
        """``POST /api/orders/`` for ``(sku, quantity)`` lines, paid with payment ``token``.

        Every retry of the call sends the same ``Idempotency-Key`` (a new one per call unless given).
        """
        body = {
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            "shipping_address": address,
            "payment_token": token,
        }
        key = idempotency_key or str(uuid.uuid4())
        return self.request("POST", "/api/orders/", body=body, headers={"Idempotency-Key": key})

    def confirm(self, order_id: str) -> Reply:
        return self.request("POST", f"/api/orders/{order_id}/confirm/")

    def cancel(self, order_id: str, reason: str) -> Reply:
        return self.request("POST", f"/api/orders/{order_id}/cancel/", body={"reason": reason})

    def get_order(self, order_id: str) -> Reply:
        return self.request("GET", f"/api/orders/{order_id}/")

    def request(self, method: str, path: str, *, body: object = None, headers: dict[str, str] | None = None) -> Reply:
        """Call until answered with something other than 503, or ``retry_for`` seconds have passed."""
        deadline = time.monotonic() + self.retry_for
        exchanges: list[Exchange] = []
        for attempt in itertools.count(1):
            exchange, data, answer_headers = self._once(method, path, body, headers or {}, attempt)
            exchanges.append(exchange)
            self.log.add(exchange)
            pause = self._pause_before_retry(exchange, answer_headers)
            if pause is None or time.monotonic() + pause > deadline:
                return Reply(exchange.status, data, answer_headers, exchanges)
            time.sleep(pause)
        raise AssertionError("unreachable")

    def _once(
        self, method: str, path: str, body: object, headers: dict[str, str], attempt: int
    ) -> tuple[Exchange, Any, dict[str, str]]:
        client_request_id = str(uuid.uuid4())
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={**self._headers(client_request_id), **headers},
        )
        started_at, began = time.time(), time.monotonic()
        status, data, answer_headers, error = None, None, {}, ""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, answer_headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as answer:  # a 4xx or 5xx is an answer
            status, answer_headers, raw = answer.code, dict(answer.headers), answer.read()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as failure:
            raw, error = b"", f"{type(failure).__name__}: {getattr(failure, 'reason', failure)}"
        if raw:
            data = _decoded(raw)
        elapsed = time.monotonic() - began
        request_id = answer_headers.get("X-Request-ID", "")
        exchange = Exchange(method, path, request_id, status, elapsed, started_at, attempt, error, client_request_id)
        return exchange, data, answer_headers

    def _headers(self, request_id: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json", "X-Request-ID": request_id}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        return headers

    def _pause_before_retry(self, exchange: Exchange, headers: dict[str, str]) -> float | None:
        """Seconds to wait before trying again, or None when this answer is final."""
        if exchange.status is None:
            return min(0.1 * 2 ** (exchange.attempt - 1), 2.0)
        if exchange.status in RETRIED_STATUSES:
            return min(_retry_after(headers.get("Retry-After", "")), self.retry_after_cap)
        return None


def _retry_after(value: str) -> float:
    """``Retry-After`` in seconds (a number or an HTTP date); 1 s when absent or unreadable."""
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, (email.utils.parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    return 1.0


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
