import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .context import Cause, caused_by


class CorrelationMiddleware:
    """Give each request an id that events published while serving it point to.

    An incoming ``X-Request-ID`` (a UUID) is honoured so that a trace can be
    followed across services; the id is echoed in the response.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _parse_uuid(request.headers.get("X-Request-ID")) or uuid.uuid4()
        cause = Cause(
            correlation_id=request_id,
            causation_id=request_id,
            traceparent=request.headers.get("traceparent", "")[:55],
        )
        with caused_by(cause):
            response = self.get_response(request)
        response["X-Request-ID"] = str(request_id)
        return response


def _parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
