"""Every API error is JSON a person can act on: the shape of config/api/errors.py."""

import json

import pytest
from django.db import OperationalError
from django.test import RequestFactory
from rest_framework import parsers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from config.api.errors import RETRY_AFTER_SECONDS, UNAVAILABLE_DETAIL, Conflict, error_body, server_error

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"


def test_malformed_json_gets_400_saying_so():
    response = APIClient().generic("POST", TOKEN_URL, '{"username": "sam",', content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "parse_error"
    assert body["detail"].startswith("The body is not valid JSON: ")


def test_json_that_is_not_strict_json_is_refused():
    response = APIClient().generic("POST", TOKEN_URL, '{"username": NaN}', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("charset", ["base64", "bz2_codec", "rot13", "no-such-charset"])
def test_a_charset_that_is_not_a_text_encoding_gets_415_naming_it(content_type, charset):
    # when credentials come in a charset nobody knows, or one Python knows only as a byte or text transform
    body = '{"username": "sam", "password": "p"}' if content_type == "application/json" else "username=sam&password=p"
    response = APIClient().generic("POST", TOKEN_URL, body, content_type=f"{content_type}; charset={charset}")
    # then
    assert response.status_code == 415
    assert response.json() == {
        "detail": f'The charset "{charset}" in the Content-Type header is not a text encoding we can read: '
        "send the body as UTF-8 (charset=utf-8, or no charset).",
        "code": "unsupported_media_type",
    }


@pytest.mark.parametrize(
    ("opening", "core", "closing"), [("[", "", "]"), ('{"a":', "1", "}")], ids=["nested-arrays", "nested-objects"]
)
def test_a_body_nested_too_deeply_to_parse_gets_400_saying_so(settings, opening, core, closing):
    # given a body within the size limit (1 MiB) that is nothing but nesting
    depth = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(core)) // (len(opening) + len(closing))
    body = opening * depth + core + closing * depth
    # when
    response = APIClient().generic("POST", TOKEN_URL, body, content_type="application/json")
    # then
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The body is not valid JSON we can read: its arrays or objects are nested hundreds of levels "
        "deep. Send a flatter document.",
        "code": "parse_error",
    }


def test_a_body_over_the_limit_gets_413_without_being_parsed(settings):
    # given a body just over the limit (1 MiB)
    body = json.dumps({"username": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "password": "p"})
    # when
    response = APIClient().generic("POST", TOKEN_URL, body, content_type="application/json")
    # then
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"The request body is larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes: "
        "send less.",
        "code": "request_too_large",
    }


def test_an_oversized_form_body_gets_413_too(settings):
    body = "username=" + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = APIClient().generic("POST", TOKEN_URL, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


class EchoView(APIView):
    """A view with DRF's own parsers, none of ours: what it refuses, DRF and Django refuse."""

    authentication_classes = ()
    permission_classes = ()
    parser_classes = (parsers.JSONParser, parsers.FormParser)

    def post(self, request):
        return Response({"keys": sorted(request.data)})


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", lambda size: json.dumps({"x": "x" * size})),
        ("application/x-www-form-urlencoded", lambda size: "x=" + "x" * size),
    ],
    ids=["json", "form"],
)
def test_django_and_drf_refuse_a_body_over_the_limit_before_any_parser_reads_it(settings, content_type, body):
    # given DRF's stock parsers (they read request.body, which checks Content-Length against the limit)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    view = EchoView.as_view()
    factory = APIRequestFactory()
    # when a body just within the limit, then one just over it, is posted
    within = view(factory.generic("POST", "/api/echo/", body(900), content_type=content_type))
    over = view(factory.generic("POST", "/api/echo/", body(1000), content_type=content_type))
    # then the first is parsed, the second refused with the project's error shape (config/api/errors.py)
    assert (within.status_code, within.data) == (200, {"keys": ["x"]})
    assert over.status_code == 413
    assert over.data == {
        "detail": "The request body is larger than the limit of 1000 bytes: send less.",
        "code": "request_too_large",
    }


def test_a_body_that_is_not_json_gets_415():
    response = APIClient().generic("POST", TOKEN_URL, "<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_a_wrong_method_gets_405_json():
    response = APIClient().get(TOKEN_URL)
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "GET" not allowed.', "code": "method_not_allowed"}


def test_an_unknown_api_route_gets_404_json():
    response = APIClient().get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "There is no API route /api/no-such-thing/: see /api/docs/.",
        "code": "not_found",
    }


def test_an_unknown_page_outside_the_api_stays_html():
    response = APIClient().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_bug_under_the_api_answers_500_json_without_details():
    response = server_error(RequestFactory().get("/api/outbox/dead-letters/"))
    assert response.status_code == 500
    assert json.loads(response.content) == {
        "detail": "Internal server error: the fault is ours and has been logged.",
        "code": "server_error",
    }


@pytest.mark.parametrize(
    ("path", "content_type"), [("/api/orders/", "application/json"), ("/orders/", "text/html; charset=utf-8")]
)
def test_a_lost_database_connection_outside_any_view_answers_503_with_retry_after(path, content_type):
    # given the error Django's handler500 is called for, e.g. a session that could not be saved
    request = RequestFactory().get(path)
    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        # when
        response = server_error(request)
    # then
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Content-Type"] == content_type
    if content_type == "application/json":
        assert json.loads(response.content) == {"detail": UNAVAILABLE_DETAIL, "code": "service_unavailable"}


def test_nested_field_errors_are_keyed_by_their_path():
    # given the errors DRF reports for an order whose second line has a bad quantity
    exc = ValidationError(
        {"lines": [{}, {"quantity": ["Ensure this value is greater than or equal to 1."]}], "payment_token": ["Bad."]}
    )
    # when
    body = error_body(exc)
    # then
    assert body == {
        "detail": "Invalid input: lines.1.quantity: Ensure this value is greater than or equal to 1. "
        "(and 1 more: see errors)",
        "code": "invalid",
        "errors": {"lines.1.quantity": ["Ensure this value is greater than or equal to 1."], "payment_token": ["Bad."]},
    }


def test_a_plain_validation_message_is_the_detail():
    body = error_body(ValidationError("Lines must name different products."))
    assert body == {
        "detail": "Lines must name different products.",
        "code": "invalid",
        "errors": {"non_field_errors": ["Lines must name different products."]},
    }


def test_a_conflict_is_409_with_its_reason():
    exc = Conflict("Order 42 has shipped: it can no longer be cancelled.")
    assert exc.status_code == 409
    assert error_body(exc) == {"detail": "Order 42 has shipped: it can no longer be cancelled.", "code": "conflict"}
