"""Throttles shared by the API and the shop's pages: one budget per user, whichever door they use.

DRF's throttles count in the default cache (every process shares it: config/checks.py), keyed by
the user, or by the client's address as :func:`config.security.client_address` reads it.
"""

import logging
import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class OrderPlaceThrottle(UserRateThrottle):
    """``ORDER_PLACE_RATE`` orders placed per user (``POST /api/orders/`` and the order form together).

    Only placing counts: the API view that places (POST) also lists (GET), which this leaves alone.
    A cache that does not answer lets the order through (logged): a limit is not worth refusing
    customers their orders for as long as the cache is down.
    """

    scope = "order-place"

    def get_rate(self) -> str:
        return settings.ORDER_PLACE_RATE

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method != "POST":
            return True
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning("order limit not applied: the cache is unavailable (%s)", exc)
            return True


def seconds_to_wait(throttle: SimpleRateThrottle, request: HttpRequest) -> int | None:
    """For a page: None when ``throttle`` lets ``request`` through (and counts it), else whole seconds to wait."""
    # DRF's throttles read only the request's META and user, which a Django request has; a page has no APIView.
    if throttle.allow_request(request, None):  # type: ignore[arg-type]
        return None
    return max(1, math.ceil(throttle.wait() or 1))
