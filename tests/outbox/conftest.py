import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from outbox.dispatch import kick_relay_on_commit
from outbox.models import Delivery, OutboxEvent
from tests.support.processes import wait_for


def store_raw_event(*, type: str, version: int, payload: dict, aggregate_id: str = "") -> OutboxEvent:
    """Write an outbox row as some other (older, newer, broken) code would have."""
    with transaction.atomic():
        row = OutboxEvent.objects.create(
            type=type,
            version=version,
            occurred_at=timezone.now(),
            aggregate_type="probe.Thing",
            aggregate_id=aggregate_id or str(uuid.uuid4()),
            correlation_id=uuid.uuid4(),
            payload=payload,
        )
        kick_relay_on_commit()
    return row


def wait_until_finished(event: OutboxEvent, *, timeout: float = 20, what: str = "") -> list[Delivery]:
    """Wait until every delivery of ``event`` exists and is done or dead."""

    def finished() -> list[Delivery] | None:
        deliveries = list(Delivery.objects.filter(event=event))
        if deliveries and all(d.status in ("done", "dead") for d in deliveries):
            return deliveries
        return None

    return wait_for(finished, timeout=timeout, what=what or f"deliveries of {event} to finish")


def make_dead_letter() -> Delivery:
    """A probe.breakable delivery that failed its last attempt, in-process (no workers)."""
    from outbox.publishing import publish
    from outbox.relay import fan_out
    from outbox.runner import run_deliveries
    from tests.outbox.probe.events import Broke
    from tests.outbox.probe.models import Switch

    Switch.objects.update_or_create(name="broken", defaults={"on": True})
    with transaction.atomic():
        row = publish(Broke(thing_id=uuid.uuid4()))
    fan_out(batch_size=10)
    delivery = Delivery.objects.get(event=row)
    # Two attempts failed already; the run starts the third, probe.breakable's last.
    Delivery.objects.filter(id=delivery.id).update(attempts=2)
    run_deliveries([delivery.id])
    delivery.refresh_from_db()
    assert delivery.status == "dead"
    return delivery


@pytest.fixture
def dlq_operator(db):
    """A staff user allowed to retry and discard dead letters."""
    user = get_user_model().objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="retry_delivery"))
    return user


class Downstream:
    """An HTTP service of the test's own that the ``probe.call_downstream`` handler calls; stop it for an outage."""

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.calls = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        owner = self

        class Answer(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.calls += 1
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Answer)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Connections are refused from now on, until :meth:`start`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def downstream():
    """The downstream service, up, its address published to the probe handler (in whichever process it runs)."""
    from tests.outbox.probe.handlers import DOWNSTREAM_URL_KEY, side_channel

    service = Downstream()
    service.start()
    side_channel().set(DOWNSTREAM_URL_KEY, service.url)
    yield service
    service.stop()
