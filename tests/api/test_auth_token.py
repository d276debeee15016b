"""POST /api/auth/token/ and how every protected route answers a missing or bad token."""

import threading
import time
import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.support.addresses import fresh_address
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
    # given a low limit, and a client address no other test uses
    client = APIClient(REMOTE_ADDR=fresh_address())
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


# Guessing through X-Forwarded-For, from many addresses at one username, and the lockout


def _guess(client: APIClient, username: str = "sam", **headers: str):
    return client.post(TOKEN_URL, {"username": username, "password": "guess"}, format="json", **headers)


def test_with_no_proxy_declared_a_forged_forwarded_for_is_no_fresh_bucket():
    # given no trusted proxy (NUM_PROXIES=0, the default) and a client at one address
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0
    client = APIClient(REMOTE_ADDR=fresh_address())
    with override_settings(API_TOKEN_RATE="2/minute"):
        # when it claims another address in X-Forwarded-For on every attempt
        answers = [_guess(client, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}") for n in range(1, 4)]
    # then all are counted against its own address
    assert [a.status_code for a in answers] == [400, 400, 429]


def test_behind_one_proxy_the_address_it_appended_is_counted():
    # given one trusted proxy, which appends the address it saw to whatever the client sent
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")
    client_a, client_b = fresh_address(), fresh_address()
    one_proxy = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    with override_settings(API_TOKEN_RATE="2/minute", REST_FRAMEWORK=one_proxy):
        # when client A guesses three times, forging a different first address each time
        answers = [_guess(proxy, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, {client_a}") for n in range(1, 4)]
        # then its third attempt is throttled, while client B, behind the same proxy, is not
        other = _guess(proxy, HTTP_X_FORWARDED_FOR=client_b)
    assert [a.status_code for a in answers] == [400, 400, 429]
    assert other.status_code == 400


def test_guessing_one_username_from_many_addresses_is_throttled_per_username():
    # given a low per-username limit, and an account
    username = f"sam-{uuid.uuid4().hex[:8]}"
    make_user(username)
    with override_settings(API_TOKEN_USERNAME_RATE="2/minute"):
        # when its password is guessed from three addresses
        answers = [_guess(APIClient(REMOTE_ADDR=fresh_address()), username) for _ in range(3)]
        # and then its owner signs in, from a fourth
        owner = APIClient(REMOTE_ADDR=fresh_address()).post(
            TOKEN_URL, {"username": username, "password": PASSWORD}, format="json"
        )
        # while another account is not slowed down
        make_user(f"{username}-other")
        other = APIClient(REMOTE_ADDR=fresh_address()).post(
            TOKEN_URL, {"username": f"{username}-other", "password": PASSWORD}, format="json"
        )
    # then the third guess is throttled, and so is the owner (the accepted price of a per-account limit)
    assert [a.status_code for a in answers] == [400, 400, 429]
    assert answers[2].json()["code"] == "throttled"
    assert owner.status_code == 429
    assert other.status_code == 200


def test_repeated_failures_lock_the_username_out_with_when_to_try_again():
    # given a lockout after three failures, shared with the shop's and the admin's sign-in forms
    username = f"sam-{uuid.uuid4().hex[:8]}"
    make_user(username)
    with override_settings(AXES_FAILURE_LIMIT=3):
        # when the password is guessed three times, each from another address
        answers = [_guess(APIClient(REMOTE_ADDR=fresh_address()), username) for _ in range(3)]
        # then even the right password, from yet another address, is refused for now
        right = APIClient(REMOTE_ADDR=fresh_address()).post(
            TOKEN_URL, {"username": username, "password": PASSWORD}, format="json"
        )
    assert [a.status_code for a in answers] == [400, 400, 429]
    for answer in (answers[2], right):
        assert answer.status_code == 429
        assert answer.json() == {
            "detail": "Too many failed sign-ins for this account or from your address: try again in 15 minutes.",
            "code": "throttled",
        }
        assert answer["Retry-After"] == "900"
    assert not Token.objects.filter(user__username=username).exists()


# Token creation racing, and a new password


@pytest.mark.django_db(transaction=True)
def test_two_first_sign_ins_at_once_get_the_same_token_and_no_error():
    # given a user without a token, and another sign-in that has just inserted one, not yet committed
    user = make_user("sam")
    inserted, failures = threading.Event(), []

    def other_sign_in() -> None:
        try:
            with transaction.atomic():
                Token.objects.create(user=user, key="a" * 40)
                inserted.set()
                _wait_until_an_insert_waits_on_ours()
        except Exception as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    racer = threading.Thread(target=other_sign_in)
    racer.start()
    assert inserted.wait(10)
    # when this sign-in, finding no token, inserts its own (which waits on the other's, then loses)
    response = APIClient().post(TOKEN_URL, {"username": "sam", "password": PASSWORD}, format="json")
    racer.join(10)
    # then it answers the token the other sign-in made, not a 500
    assert failures == []
    assert response.status_code == 200
    assert response.json() == {"token": "a" * 40}


def _wait_until_an_insert_waits_on_ours(timeout: float = 10.0) -> None:
    """Poll (within the open transaction) until another connection's token insert waits for our lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # a transaction sees one snapshot of the activity
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ['INSERT INTO "authtoken_token"%'],
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the other sign-in's insert never waited on ours")


def _sign_in(username: str, password: str = PASSWORD):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json")


def test_a_new_password_revokes_the_token_and_the_next_sign_in_gets_a_new_one():
    # given a user with a token in use
    user = make_user("sam")
    old = _sign_in("sam").json()["token"]
    # when the password changes (the admin, the password pages and changepassword all save it so)
    user.set_password("a-new-password-for-sam")
    user.save()
    # then the old token no longer authenticates, and signing in with the new password gives a new one
    assert token_client(key=old).get(PROTECTED_URL).status_code == 401
    new = _sign_in("sam", "a-new-password-for-sam").json()["token"]
    assert new != old


def test_the_password_change_page_revokes_the_token():
    user = make_user("sam")
    old = _sign_in("sam").json()["token"]
    page = APIClient()
    page.force_login(user)
    new_password = "another-new-password-for-sam"
    answer = page.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
        format="multipart",
    )
    assert answer.status_code == 302, answer.content
    assert not Token.objects.filter(key=old).exists()


def test_the_same_password_hashed_anew_keeps_the_token():
    # given a user with a token (Django rehashes a password at sign-in when its hasher's settings change)
    user = make_user("sam")
    old = _sign_in("sam").json()["token"]
    # when the same password is stored with a new hash, and other fields change
    user.set_password(PASSWORD)
    user.first_name = "Sam"
    user.save()
    # then the token still works
    assert token_client(key=old).get(PROTECTED_URL).status_code in (200, 403)
    assert Token.objects.filter(key=old).exists()


def test_a_new_hash_of_the_same_password_at_sign_in_keeps_the_token():
    # given a user with a token, whose password was hashed with the tests' (MD5) hasher
    make_user("sam")
    old = _sign_in("sam").json()["token"]
    # when the preferred hasher changes, so that signing in stores a new hash of the same password
    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    ):
        again = _sign_in("sam").json()["token"]
    # then the password was rehashed, and the token is the same
    assert get_user_model().objects.get(username="sam").password.startswith("pbkdf2_sha256$")
    assert again == old
