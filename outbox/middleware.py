import logging
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .context import Cause, caused_by

logger = logging.getLogger(__name__)

# A client's own request id is kept for the logs only: at most this many printable ASCII characters.
CLIENT_REQUEST_ID_MAX_LENGTH = 200


class CorrelationMiddleware:
    """Give each request an id of ours that events published while serving it point to.

    The id is always a fresh UUID, answered as ``X-Request-ID``: a client's
    own ``X-Request-ID`` never becomes it, or a client could make its
    requests look like another's in the event log and the trace. The
    client's id (length-capped, printable) is logged beside ours as
    ``client_request_id``, so that the two can be matched up, and is kept on
    the request for other log lines (``request.client_request_id``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = uuid.uuid4()
        client_id = client_request_id(request.headers.get("X-Request-ID"))
        # Read back with getattr (config/security.py): HttpRequest declares neither attribute.
        setattr(request, "request_id", request_id)  # noqa: B010
        setattr(request, "client_request_id", client_id)  # noqa: B010
        if client_id:
            logger.info(
                "request %s carries the client's X-Request-ID %s",
                request_id,
                client_id,
                extra={"request_id": str(request_id), "client_request_id": client_id},
            )
        cause = Cause(
            correlation_id=request_id,
            causation_id=request_id,
            traceparent=request.headers.get("traceparent", "")[:55],
        )
        with caused_by(cause):
            response = self.get_response(request)
        response["X-Request-ID"] = str(request_id)
        return response


def client_request_id(value: str | None) -> str:
    """The client's request id as the logs may hold it: printable ASCII only, at most a couple of hundred characters."""
    if not value:
        return ""
    return "".join(c for c in value if " " <= c <= "~")[:CLIENT_REQUEST_ID_MAX_LENGTH]
