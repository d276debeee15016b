"""Errors reach Sentry when SENTRY_DSN is set: a view's, and a handler exception the outbox caught.

A Sentry of the test's own: a local HTTP server that keeps the envelopes the SDK posts to it.
"""

import gzip
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from config.sentry import init_sentry
from outbox.models import Delivery
from outbox.publishing import publish
from outbox.relay import fan_out
from outbox.runner import run_deliveries
from tests.outbox.probe.events import Broke
from tests.outbox.probe.models import Switch
from tests.support.processes import ROOT, wait_for


class SentryServer:
    """Receives envelopes (``POST /api/<project>/envelope/``) and keeps their items."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        received = self.items

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received.extend(json.loads(line) for line in body.splitlines()[1:] if line.startswith(b"{"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://public-key@127.0.0.1:{self.server.server_address[1]}/1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [item for item in list(self.items) if "exception" in item or "logentry" in item]

    def exception_types(self) -> list[str]:
        return [value["type"] for event in self.events() for value in event.get("exception", {}).get("values", [])]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sentry():
    """Sentry initialised as the settings do with SENTRY_DSN set, pointed at a server of the test's own."""
    server = SentryServer()
    init_sentry(server.dsn, environment="test")
    yield server
    sentry_sdk.flush(timeout=5)
    sentry_sdk.get_client().close()
    for scope in (sentry_sdk.get_global_scope(), sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
        scope.set_client(None)  # inert again, for the rest of the session
    server.stop()


class PageBroke(RuntimeError):
    pass


def broken_page(request: HttpRequest) -> HttpResponse:
    raise PageBroke("the page is broken")


urlpatterns = [path("broken/", broken_page)]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_an_error_in_a_view_reaches_sentry_without_personal_data(sentry):
    # when a signed-in customer's page fails
    client = Client(raise_request_exception=False, REMOTE_ADDR="198.51.100.7")
    response = client.get("/broken/?email=alice@customers.example", HTTP_COOKIE="sessionid=secret-session")
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    # then Sentry has the error, its type and the request's path, and no address, cookie or user
    wait_for(lambda: "PageBroke" in sentry.exception_types(), timeout=10, what="the view's error at Sentry")
    event = next(e for e in sentry.events() if "PageBroke" in json.dumps(e.get("exception")))
    assert event["transaction"] == "/broken/"
    sent = json.dumps(event)
    for personal in ("secret-session", "198.51.100.7", "alice@customers.example"):
        assert personal not in sent
    assert "user" not in event


@pytest.mark.django_db(transaction=True)
def test_a_handler_exception_the_outbox_caught_reaches_sentry(sentry):
    # given a handler that fails, and its delivery
    Switch.objects.create(name="broken", on=True)
    with transaction.atomic():
        row = publish(Broke(thing_id=uuid.uuid4()))
    fan_out(batch_size=10)
    delivery = Delivery.objects.get(event=row, handler="probe.breakable")
    # when the runner runs it (in this process, against PostgreSQL), catching the exception and scheduling a retry
    report = run_deliveries([delivery.id])
    assert report.failed == [delivery.id]
    sentry_sdk.flush(timeout=5)
    # then Sentry has the exception, with its type and the runner's message
    wait_for(lambda: "ValueError" in sentry.exception_types(), timeout=10, what="the handler's error at Sentry")
    event = next(e for e in sentry.events() if "ValueError" in json.dumps(e.get("exception")))
    assert event["logger"] == "outbox.runner"
    assert "probe.breakable failed on event" in event["logentry"]["message"] % tuple(event["logentry"]["params"])
    assert event["exception"]["values"][-1]["value"] == "the probe is broken (switch 'broken' is on)"


def _settings_sentry(**env: str) -> dict:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    script = (
        "import django, json, sentry_sdk; django.setup(); c = sentry_sdk.get_client(); "
        "print(json.dumps({'active': c.is_active(), 'integrations': sorted(c.integrations), "
        "'collected': c.options['data_collection'], 'bodies': c.options['max_request_body_size']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**keep, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_settings_start_sentry_only_with_a_dsn_and_with_django_celery_and_logging():
    assert _settings_sentry()["active"] is False
    started = _settings_sentry(SENTRY_DSN="http://public-key@127.0.0.1:9/1")
    assert started["active"] is True
    assert {"django", "celery", "logging"} <= set(started["integrations"])
    collected = started["collected"]
    assert (collected["user_info"], collected["stack_frame_variables"], started["bodies"]) == (False, False, "never")
