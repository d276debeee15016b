"""The security log: a JSON line for each failed sign-in, throttled or locked-out request, and refusal."""

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from pythonjsonlogger.json import JsonFormatter
from rest_framework.test import APIClient

from tests.support.addresses import fresh_address
from tests.support.processes import ROOT
from tests.support.users import PASSWORD, make_user, token_client

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def security_lines() -> Iterator[list[dict]]:
    """The lines the ``security`` logger writes while the block runs, formatted as its configured handler does."""
    logger = logging.getLogger("security")
    [configured] = [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]  # pytest adds its own
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(configured.formatter)
    logger.addHandler(handler)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines.extend(json.loads(line) for line in out.getvalue().splitlines())


def test_a_failed_api_sign_in_is_one_line_with_request_id_username_tried_address_and_path():
    # given
    make_user("sam")
    address = fresh_address()
    # when a wrong password is sent for sam
    with security_lines() as lines:
        response = APIClient(REMOTE_ADDR=address).post(
            "/api/auth/token/", {"username": "sam", "password": "Wr0ng-guess!"}, format="json", HTTP_X_REQUEST_ID="t-1"
        )
    # then
    assert response.status_code == 400
    [line] = lines
    assert line == {
        "time": line["time"],
        "level": "WARNING",
        "logger": "security",
        "message": "sign_in_failed",
        "event": "sign_in_failed",
        "request_id": response["X-Request-ID"],
        "client_request_id": "t-1",
        "user_id": None,
        "client_address": address,
        "method": "POST",
        "path": "/api/auth/token/",
        "attempted_username": "sam",
    }


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"], ids=["shop", "admin"])
def test_a_failed_sign_in_on_a_page_is_logged(url):
    make_user("sam", staff=True)
    with security_lines() as lines:
        Client(REMOTE_ADDR=fresh_address()).post(url, {"username": "sam", "password": "Wr0ng-guess!"})
    assert [(line["event"], line["path"], line["attempted_username"]) for line in lines] == [
        ("sign_in_failed", url, "sam")
    ]


def test_a_lockout_is_logged_after_the_failure_that_met_it():
    username = f"sam-{uuid.uuid4().hex[:8]}"
    with override_settings(AXES_FAILURE_LIMIT=1), security_lines() as lines:
        response = Client(REMOTE_ADDR=fresh_address()).post("/accounts/login/", {"username": username, "password": "x"})
    assert response.status_code == 429
    assert [(line["event"], line.get("status")) for line in lines] == [("sign_in_failed", None), ("locked_out", 429)]


def test_throttling_is_logged_with_the_user():
    # given a customer over their order limit
    carol = make_user(f"carol-{uuid.uuid4().hex[:8]}")
    cache.delete(f"throttle_order-place_{carol.pk}")
    client = token_client(carol)
    with override_settings(ORDER_PLACE_RATE="1/minute"), security_lines() as lines:
        client.post("/api/orders/", {}, format="json")  # invalid, but counted
        response = client.post("/api/orders/", {}, format="json")
    assert response.status_code == 429
    [line] = lines
    assert (line["event"], line["status"], line["code"]) == ("throttled", 429, "throttled")
    assert line["user_id"] == carol.pk
    assert carol.username not in json.dumps(line)  # an id, not personal data
    assert line["request_id"] == response["X-Request-ID"]


def test_a_refused_permission_is_logged_on_the_api_and_in_the_admin():
    # given a customer, and staff without the permission to read dead letters
    carol, sam = make_user("carol"), make_user("sam", staff=True)
    admin = Client()
    admin.force_login(sam)
    with security_lines() as lines:
        api = token_client(carol).get("/api/outbox/dead-letters/")
        page = admin.get("/admin/outbox/delivery/")
    assert (api.status_code, page.status_code) == (403, 403)
    assert [(line["event"], line["user_id"], line["path"], line["code"]) for line in lines] == [
        ("permission_denied", carol.pk, "/api/outbox/dead-letters/", "permission_denied"),
        ("permission_denied", sam.pk, "/admin/outbox/delivery/", ""),
    ]


def test_a_bad_token_is_logged_without_the_token():
    token = uuid.uuid4().hex
    with security_lines() as lines:
        response = token_client(key=token).get("/api/orders/")
    assert response.status_code == 401
    [line] = lines
    assert (line["event"], line["code"]) == ("not_authenticated", "authentication_failed")
    assert token not in json.dumps(line)


def test_no_password_or_token_appears_in_the_security_log():
    # given a user with a token, and guesses of their password and of tokens
    user = make_user("sam")
    real_token = APIClient().post("/api/auth/token/", {"username": "sam", "password": PASSWORD}, format="json")
    real_token = real_token.json()["token"]
    guesses = ["Pa55-guess-one", "Pa55-guess-two"]
    wrong_token = real_token[:-1] + ("1" if real_token.endswith("0") else "0")
    with security_lines() as lines:
        for guess in guesses:
            APIClient().post("/api/auth/token/", {"username": "sam", "password": guess}, format="json")
            Client().post("/accounts/login/", {"username": "sam", "password": guess})
        token_client(key=wrong_token).get("/api/orders/")
        token_client(user).get("/api/outbox/dead-letters/")  # a refusal, with the real token
    # then every event is there, and none of the secrets
    text = "\n".join(json.dumps(line) for line in lines)
    assert len(lines) == 6
    for secret in [*guesses, PASSWORD, real_token, wrong_token]:
        assert secret not in text


def _python(*code: str, **env: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_FORMAT", "SENTRY_"))}
    script = "import django; django.setup(); " + "; ".join(code)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**keep, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_log_format_json_makes_every_log_line_json_and_plain_is_the_default():
    emit = "import logging; logging.getLogger('orders').warning('hello %s', 'there')"
    plain = _python(emit)
    as_json = _python(emit, LOG_FORMAT="json")
    assert plain.stderr.strip().endswith("WARNING orders hello there"), plain.stderr
    line = json.loads(as_json.stderr.strip().splitlines()[-1])
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "orders", "hello there")


def test_an_unknown_log_format_stops_start_up_naming_it():
    result = _python("pass", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT='xml': give plain or json" in result.stderr
