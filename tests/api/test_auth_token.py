"""POST /api/auth/token/ and how every protected route answers a missing or bad token."""

import ipaddress
import random

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from tests.support.users import PASSWORD, make_user, token_client

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
PROTECTED_URL = "/api/outbox/dead-letters/"


def test_a_username_and_password_get_a_token_that_authenticates():
    # given
    user = make_user("sam", staff=True, perms=("outbox.view_delivery",))
    # when
    response = APIClient().post(TOKEN_URL, {"username": "sam", "password": PASSWORD}, format="json")
    # then
    assert response.status_code == 200
    token = response.json()["token"]
    assert token == user.auth_token.key
    assert token_client(key=token).get(PROTECTED_URL).status_code == 200


def test_signing_in_again_returns_the_same_token():
    make_user("sam")
    first = APIClient().post(TOKEN_URL, {"username": "sam", "password": PASSWORD}, format="json").json()
    second = APIClient().post(TOKEN_URL, {"username": "sam", "password": PASSWORD}, format="json").json()
    assert first == second


def test_a_form_encoded_sign_in_works_too():
    make_user("sam")
    response = APIClient().post(TOKEN_URL, {"username": "sam", "password": PASSWORD}, format="multipart")
    assert response.status_code == 415  # multipart is not accepted ...
    response = APIClient().generic(
        "POST", TOKEN_URL, f"username=sam&password={PASSWORD}", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200  # ... but a plain HTML-form body is, like curl -d
    assert response.json()["token"]


@pytest.mark.parametrize(
    ("username", "password"), [("sam", "wrong-password"), ("nobody", PASSWORD)], ids=["bad password", "unknown user"]
)
def test_bad_credentials_get_400_with_a_message_and_no_token(username, password):
    # given
    make_user("sam")
    # when
    response = APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json")
    # then
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Unable to sign in with the username and password given.",
        "code": "invalid",
        "errors": {"non_field_errors": ["Unable to sign in with the username and password given."]},
    }


def test_an_inactive_user_gets_no_token():
    make_user("sam", is_active=False)
    response = APIClient().post(TOKEN_URL, {"username": "sam", "password": PASSWORD}, format="json")
    assert response.status_code == 400


def test_missing_fields_are_named():
    response = APIClient().post(TOKEN_URL, {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {"username": ["This field is required."], "password": ["This field is required."]}
    assert body["detail"] == "Invalid input: username: This field is required. (and 1 more: see errors)"


def test_a_field_of_the_wrong_type_is_named():
    response = APIClient().post(TOKEN_URL, {"username": ["sam"], "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"username": ["Not a valid string."]}


def test_password_guessing_is_throttled_per_client_address():
    # given a low limit, and a client address no other test uses (TEST-NET-1, never routed)
    address = str(ipaddress.ip_address("192.0.2.0") + random.randrange(1, 255))
    cache.delete(f"throttle_auth-token_{address}")
    client = APIClient(REMOTE_ADDR=address)
    with override_settings(API_TOKEN_RATE="2/minute"):
        # when
        answers = [client.post(TOKEN_URL, {"username": "sam", "password": "guess"}, format="json") for _ in range(3)]
    # then
    assert [a.status_code for a in answers] == [400, 400, 429]
    assert answers[2].json()["code"] == "throttled"
    assert int(answers[2]["Retry-After"]) > 0


def test_no_token_gets_401_saying_how_to_authenticate():
    response = APIClient().get(PROTECTED_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }


def test_a_bad_token_gets_401():
    response = token_client(key="0" * 40).get(PROTECTED_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}


def test_a_session_signed_in_user_needs_no_token():
    client = APIClient()
    client.force_login(make_user("sam", staff=True, perms=("outbox.view_delivery",)))
    assert client.get(PROTECTED_URL).status_code == 200
