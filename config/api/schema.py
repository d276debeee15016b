"""The OpenAPI schema: every operation documents the error bodies it can answer."""

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework.permissions import AllowAny

from .errors import UNAVAILABLE_DETAIL, ErrorSerializer, InvalidInputSerializer

# code: (when, an example body)
ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Invalid input, and nothing was written: `errors` has the messages for each field.",
        {
            "detail": "Invalid input: lines.0.quantity: Ensure this value is greater than or equal to 1.",
            "code": "invalid",
            "errors": {"lines.0.quantity": ["Ensure this value is greater than or equal to 1."]},
        },
    ),
    401: (
        "No credentials, or bad ones: send `Authorization: Token <key>` (POST /api/auth/token/ gives the key).",
        {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"},
    ),
    403: (
        "Signed in, but not allowed to do this.",
        {"detail": "Reading dead letters needs the outbox.view_delivery permission.", "code": "permission_denied"},
    ),
    404: ("No such resource (or not yours to see).", {"detail": "Not found.", "code": "not_found"}),
    409: (
        "The resource's current state forbids this.",
        {"detail": "The request conflicts with the current state of the resource.", "code": "conflict"},
    ),
    413: (
        "The request body is over the size limit.",
        {
            "detail": "The request body is larger than the limit of 1048576 bytes: send less.",
            "code": "request_too_large",
        },
    ),
    415: (
        "The body is not JSON, or its charset is not a text encoding: send `Content-Type: application/json` (UTF-8).",
        {"detail": 'Unsupported media type "text/plain" in request.', "code": "unsupported_media_type"},
    ),
    422: (
        "Well-formed, but it cannot be done as asked: the `Idempotency-Key` already placed an order "
        "from a different request.",
        {
            "detail": "The Idempotency-Key '4f1c...' already placed order 0b8e... from a different request: "
            "send exactly that request again to get that order, or use a new key for a new order.",
            "code": "idempotency_key_reused",
        },
    ),
    429: (
        "Too many requests: wait the seconds in `Retry-After`.",
        {"detail": "Request was throttled. Expected available in 42 seconds.", "code": "throttled"},
    ),
    503: (
        "The database dropped or refused the connection: wait the seconds in `Retry-After`, then send the "
        "request again. Whether it was done cannot be told from this answer, so retry it as it is: "
        "confirming is safe to repeat, and so is placing an order with the same `Idempotency-Key`.",
        {"detail": UNAVAILABLE_DETAIL, "code": "service_unavailable"},
    ),
}
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "Seconds to wait before retrying.",
    }
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """For ``extend_schema(responses={200: Out, **error_responses(404, 409)})``."""
    return {code: _error_response(code) for code in codes}


def _error_response(code: int) -> OpenApiResponse:
    description, example = ERRORS[code]
    return OpenApiResponse(
        InvalidInputSerializer if code == 400 else ErrorSerializer,
        description=description,
        examples=[OpenApiExample(example["code"], value=example, status_codes=[code], response_only=True)],
    )


class AutoSchema(SpectacularAutoSchema):
    """Adds to each operation the errors it can give, besides those its view declares.

    401/403 for a route that needs a user, 400/413/415 for one that reads a
    body, 400 for a list with a ``FilterSerializer``, 404 for a path with
    parameters and for a paginated list (a page past the end), 429 for a
    throttled route, 503 (with ``Retry-After``) for every route, since every
    one uses the database. A view's own ``extend_schema`` responses win.
    """

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, response in error_responses(*self._error_codes()).items():
            responses.setdefault(str(code), self._get_response_for_code(response, str(code), direction=direction))
        responses["503"] = {"headers": RETRY_AFTER, **responses["503"]}
        return dict(sorted(responses.items()))

    def _error_codes(self) -> list[int]:
        codes = []
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            codes += [400, 413, 415]
        elif getattr(self.view, "FilterSerializer", None) is not None or (
            self.method == "GET" and self._is_list_view()
        ):
            codes.append(400)  # a filter, or a bad page / page_size on any paginated list
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += [401, 403]
        if "{" in self.path or (self.method == "GET" and self._is_list_view()):
            codes.append(404)
        if self.view.get_throttles():
            codes.append(429)
        return [*codes, 503]
