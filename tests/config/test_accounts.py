"""Signing in to the shop and the admin, and resetting a password: each limited, saying when to come back."""

import uuid

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client, override_settings
from django.test.html import parse_html

from tests.support.addresses import fresh_address
from tests.support.html import element, elements, errors_in, text
from tests.support.users import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOCKED_OUT = "Too many failed sign-ins for this account or from your address: try again in 15 minutes."


def fresh_username() -> str:
    return f"dora-{uuid.uuid4().hex[:8]}"


def sign_in(username: str, password: str, *, address: str, url: str = "/accounts/login/"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def form_errors(response) -> list[str]:
    return errors_in(element(response, "form"))


def page_text(response) -> str:
    """The page's text (the admin shows a form's errors above it, the shop in it)."""
    return text(parse_html(response.content.decode()))


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"], ids=["shop", "admin"])
def test_repeated_failures_lock_a_username_out_and_the_form_says_until_when(url):
    # given a lockout after three failures, and a staff account (so that the admin would let it in)
    username = fresh_username()
    make_user(username, staff=True)
    with override_settings(AXES_FAILURE_LIMIT=3):
        # when its password is guessed three times, each time from another address
        guesses = [sign_in(username, "guess", address=fresh_address(), url=url) for _ in range(3)]
        # then the first two say the credentials are wrong, the third that the account is locked out, as a 429
        assert [g.status_code for g in guesses] == [200, 200, 429]
        assert LOCKED_OUT not in page_text(guesses[1])
        assert LOCKED_OUT in page_text(guesses[2])
        assert guesses[2]["Retry-After"] == "900"
        # and the right password, from a fourth address, is refused the same way for now
        right = sign_in(username, PASSWORD, address=fresh_address(), url=url)
    assert right.status_code == 429
    assert LOCKED_OUT in page_text(right)
    assert "_auth_user_id" not in right.client.session


def test_repeated_failures_lock_an_address_out_whatever_username_it_tries():
    # given a client at one address that tries three usernames
    address = fresh_address()
    with override_settings(AXES_FAILURE_LIMIT=3):
        guesses = [sign_in(fresh_username(), "guess", address=address) for _ in range(3)]
        # when a real customer then signs in from that address
        username = fresh_username()
        make_user(username)
        refused = sign_in(username, PASSWORD, address=address)
        # then it is refused for now, while the same customer elsewhere gets in
        elsewhere = sign_in(username, PASSWORD, address=fresh_address())
    assert [g.status_code for g in guesses] == [200, 200, 429]
    assert refused.status_code == 429
    assert elsewhere.status_code == 302
    assert elsewhere.client.session["_auth_user_id"]


def test_a_good_sign_in_under_the_limit_gets_in():
    username = fresh_username()
    make_user(username)
    with override_settings(AXES_FAILURE_LIMIT=3):
        address = fresh_address()
        sign_in(username, "guess", address=address)
        answer = sign_in(username, PASSWORD, address=address)
    assert answer.status_code == 302
    assert answer.client.session["_auth_user_id"]


# Password reset


def ask_reset(email: str, *, address: str):
    return Client(REMOTE_ADDR=address).post("/accounts/password_reset/", {"email": email})


def _forget_counts(*emails: str) -> None:
    from config.accounts import PasswordResetEmailThrottle

    for email in emails:
        cache.delete(PasswordResetEmailThrottle(email).get_cache_key(None, None))


def test_password_reset_cannot_flood_a_mailbox_from_many_addresses():
    # given a customer, and a limit of two reset requests per e-mail address
    email = f"{uuid.uuid4().hex[:8]}@customers.example"
    make_user(fresh_username(), email=email)
    _forget_counts(email)
    with override_settings(PASSWORD_RESET_EMAIL_RATE="2/hour"):
        # when resets for that address are asked from four addresses (in another case, too)
        answers = [ask_reset(email if n % 2 else email.upper(), address=fresh_address()) for n in range(4)]
    # then two mails are sent, and the other requests are refused with when to come back
    assert [a.status_code for a in answers] == [302, 302, 429, 429]
    assert len(mail.outbox) == 2
    errors = form_errors(answers[2])
    assert errors == [
        "Too many password reset requests from your address or for this e-mail address: try again in 60 minutes."
    ]
    assert int(answers[2]["Retry-After"]) > 0


def test_password_reset_is_limited_per_client_address():
    address = fresh_address()
    cache.delete(f"throttle_password-reset-address_{address}")
    emails = [f"{uuid.uuid4().hex[:8]}@nowhere.example" for _ in range(3)]
    _forget_counts(*emails)
    with override_settings(PASSWORD_RESET_RATE="2/hour"):
        answers = [ask_reset(email, address=address) for email in emails]
    assert [a.status_code for a in answers] == [302, 302, 429]
    assert elements(answers[2], "ul", class_="errorlist")


# Placing orders


def test_placing_orders_is_limited_per_user_across_the_form_and_the_api():
    from rest_framework.test import APIClient

    from tests.factories import ADDRESS, make_product

    # given a customer, a low limit, and an order form filled in
    customer = make_user(fresh_username(), first_name="Dora")
    cache.delete(f"throttle_order-place_{customer.pk}")
    product = make_product()
    page = Client()
    page.force_login(customer)
    api = APIClient()
    api.force_authenticate(customer)
    form = {
        "name": "Dora",
        **{k: v for k, v in ADDRESS.items() if k != "name"},
        "payment_token": "tok_visa",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-0-sku": product.sku,
        "lines-0-quantity": "1",
    }
    body = {"lines": [{"sku": product.sku, "quantity": 1}], "shipping_address": ADDRESS, "payment_token": "tok_visa"}
    with override_settings(ORDER_PLACE_RATE="2/minute"):
        # when they place one order on the page and one through the API
        placed = [page.post("/orders/new/", form), api.post("/api/orders/", body, format="json")]
        # then a third, on either, is refused with when to come back; their list is not
        third_page = page.post("/orders/new/", form)
        third_api = api.post("/api/orders/", body, format="json")
        listed = api.get("/api/orders/")
    assert [p.status_code for p in placed] == [302, 201]
    assert third_page.status_code == 429
    [message] = errors_in(element(third_page, "div", id="form-errors"))
    assert message.startswith("You have placed many orders in a short time: try again in ")
    assert message.endswith(" seconds.")
    assert third_api.status_code == 429
    assert third_api.json()["code"] == "throttled"
    assert int(third_api["Retry-After"]) > 0
    assert listed.status_code == 200
    assert listed.json()["count"] == 2
