"""Bad input anywhere in a request is a 4xx with a message a person can act on, never a 500.

Each case here answered 500 once: a query parameter, a header, a cookie or a
path that reached code which could not take it.
"""

import json

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.factories import make_product, place_order
from tests.support import wsgi
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return make_user("stella", staff=True, perms=("outbox.retry_delivery", "orders.view_order"))


def paginated_lists() -> list[str]:
    """Every paginated list of the API (the order's events need an order: ``{order}``)."""
    return ["/api/products/", "/api/orders/", "/api/orders/{order}/events/", "/api/outbox/dead-letters/"]


@pytest.mark.parametrize("url", paginated_lists())
@pytest.mark.parametrize(
    ("parameter", "raw"),
    [
        pytest.param("page_size", "²", id="superscript-two"),  # a digit to str.isdigit, not to int()
        pytest.param("page_size", "٣", id="arabic-indic-three"),  # int() reads it as 3: not a number in a URL
        pytest.param("page", "¹", id="page-superscript-one"),
        pytest.param("page_size", "9" * 5000, id="page-size-5000-digits"),
    ],
)
def test_a_page_or_page_size_that_is_not_ascii_digits_is_400_naming_it(staff, url, parameter, raw):
    # given a list with something on it
    order = place_order(customer=make_user("owner"), lines=[(make_product(), 1)])
    # when
    response = token_client(staff).get(url.format(order=order.id), {parameter: raw})
    # then
    assert response.status_code == 400
    body = response.json()
    assert list(body["errors"]) == [parameter]
    assert body["detail"].startswith(f"Invalid input: {parameter}: Give a whole number from 1")


@pytest.mark.parametrize("url", paginated_lists())
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("78971711613896309230318979116957696", id="page-35-digits"),  # past a bigint, still a page
        pytest.param("9" * 5000, id="page-5000-digits"),  # past int()'s 4,300 digits
    ],
)
def test_a_page_number_too_long_for_any_list_is_a_page_past_the_end(staff, url, raw):
    # given a list with something on it
    order = place_order(customer=make_user("owner"), lines=[(make_product(), 1)])
    # when
    response = token_client(staff).get(url.format(order=order.id), {"page": raw})
    # then: 404, as for any page past the end, not a 400 for a number the schema allows
    assert response.status_code == 404
    assert response.json()["detail"] == "Invalid page."


def test_a_token_with_a_nul_is_401_like_any_unknown_token():
    response = token_client(key="abc\x00def").get("/api/products/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}


@pytest.mark.parametrize(("url", "status"), [("/api/products/", 401), ("/orders/", 302)])
def test_a_session_cookie_with_a_nul_is_no_session(url, status):
    # given a quoted cookie value, whose octal escape Django reads as a NUL
    client = Client(HTTP_COOKIE='sessionid="abcdefgh\\000ijklmn"')
    # when
    response = client.get(url)
    # then: answered as for a visitor without a session
    assert response.status_code == status


@pytest.mark.parametrize("charset", ["base64", "bz2_codec"])
def test_a_query_string_sent_with_a_charset_that_is_no_text_encoding_is_read_as_utf_8(
    staff, in_process_requests, charset
):
    # given a request as gunicorn hands it over, whose Content-Type names a byte codec
    key = Token.objects.create(user=staff).key
    make_product()
    # when
    response = wsgi.call(
        "GET",
        "/api/products/",
        query="page_size=%31",
        content_type=f"text/plain; charset={charset}",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    # then the charset is ignored, as one Django does not know is
    assert response.status_code == 200
    assert len(json.loads(response.content)["results"]) == 1


def test_a_body_sent_with_a_charset_that_is_no_text_encoding_is_415_through_the_server_too(in_process_requests):
    response = wsgi.call(
        "POST",
        "/api/auth/token/",
        query="next=%2F",
        body=b'{"username": "stella", "password": "p"}',
        content_type="application/json; charset=base64",
    )
    assert response.status_code == 415
    assert json.loads(response.content)["code"] == "unsupported_media_type"


def test_the_api_docs_page_asked_for_as_json_with_a_malformed_token_is_406():
    # given the Swagger UI page, which is HTML only, asked for as JSON with a token header missing its key
    client = Client(HTTP_AUTHORIZATION="Token ", HTTP_ACCEPT="application/json")
    # when
    response = client.get("/api/docs/")
    # then: the 406 page renders without authenticating anyone
    assert response.status_code == 406
