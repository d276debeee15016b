"""Customer mail through real processes (relay, worker, beat) to a real SMTP server: sent once, whatever fails.

The worker sends to the sink in this test process; the sweep runs from beat.
Every count is taken at the sink, where mail arrives.
"""

import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field

import psycopg
import pytest
from django.db import connection

from notifications.models import Notification
from orders.models import Order
from orders.services import order_confirm
from tests.factories import make_product, place_order
from tests.support.mail import MailSink, ReceivedMail
from tests.support.processes import ChildProcess, process_env, start_relay, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

# Short enough for a test to watch the sweep take over; the defaults are in config/settings/base.py.
SETTINGS = {
    "OUTBOX_LEASE_SECONDS": "5",
    "NOTIFICATIONS_SEND_GRACE_SECONDS": "1",
    "NOTIFICATIONS_SWEEP_SECONDS": "0.5",
    "NOTIFICATIONS_RETRY_BASE_SECONDS": "0.5",
    "NOTIFICATIONS_RETRY_CAP_SECONDS": "1",
    "EMAIL_TIMEOUT": "3",
}


@dataclass
class MailSystem:
    sink: MailSink
    env: dict[str, str]
    processes: dict[str, ChildProcess] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{p.output()[-3000:]}" for name, p in self.processes.items())


def start_beat(**env: str) -> ChildProcess:
    """Start ``celery beat`` (the one schedule: relay sweep and mail sweep) and wait until it runs."""
    schedule = os.path.join(tempfile.mkdtemp(prefix="beat-"), "schedule")
    argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "-s", schedule, "--loglevel", "INFO"]
    beat = ChildProcess("beat", argv, process_env(**env))
    wait_for(lambda: "beat: Starting" in beat.output() or not beat.alive(), timeout=30, what="beat to start")
    assert beat.alive(), beat.output()
    return beat


@pytest.fixture(scope="module")
def mail_system(outbox_processes, django_db_blocker):
    """A relay, a worker on every queue and beat, all mailing the sink; the session's standard pair stopped."""
    outbox_processes.ensure_stopped()
    sink = MailSink().start()
    system = MailSystem(sink=sink, env={**sink.env(), **SETTINGS})
    with django_db_blocker.unblock():
        system.processes["relay"] = start_relay(**system.env)
        system.processes["worker"] = start_worker(**system.env)
        system.processes["beat"] = start_beat(**system.env)
    yield system
    for process in system.processes.values():
        process.stop()
    sink.stop()


@pytest.fixture
def mail(mail_system):
    """The system with its sink answering, no reaction to messages, and its processes alive."""
    mail_system.sink.up()
    mail_system.sink.on_message = None
    for process in mail_system.processes.values():
        assert process.alive(), mail_system.logs()
    yield mail_system
    mail_system.sink.on_message = None
    mail_system.sink.up()


def draft_order() -> Order:
    return place_order(lines=[(make_product(on_hand=10), 1)], token="tok_visa")


def confirmation_of(order: Order) -> Notification | None:
    return Notification.objects.filter(order_id=order.id, kind="order_confirmed").first()


def wait_until_sent(order: Order, mail: MailSystem, kind: str = "order_confirmed") -> Notification:
    def sent() -> Notification | None:
        return Notification.objects.filter(order_id=order.id, kind=kind, status="sent").first()

    return wait_for(sent, timeout=30, what=lambda: f"the {kind} mail of {order.id} to be sent\n{mail.logs()}")


def test_a_confirmed_order_is_mailed_once_per_kind_with_its_message_id_and_order_id(mail):
    # given
    order = draft_order()
    # when the customer confirms and the order goes through to shipment
    order_confirm(order_id=order.id)
    confirmation = wait_until_sent(order, mail)
    shipped = wait_until_sent(order, mail, kind="order_shipped")
    # then the sink received one mail of each kind, each carrying its row's Message-ID and the order id
    counts = {kind: n for (order_id, kind), n in mail.sink.per_order_and_kind().items() if order_id == str(order.id)}
    assert counts == {"order_confirmed": 1, "order_shipped": 1}
    [received] = mail.sink.matching(order_id=order.id, kind="order_confirmed")
    assert received.message_id == confirmation.message_id
    assert received.recipients == (order.customer_email,)
    assert mail.sink.matching(order_id=order.id, kind="order_shipped")[0].message_id == shipped.message_id
    assert (confirmation.attempts, shipped.attempts) == (1, 1)


def test_with_the_mail_server_down_the_mail_stays_pending_and_the_sweep_sends_it_once_it_is_back(mail):
    # given a mail server that refuses connections
    mail.sink.down()
    order = draft_order()
    # when the order is confirmed
    order_confirm(order_id=order.id)
    # then its confirmation is committed, tried, and kept pending with the error
    failed = wait_for(
        lambda: Notification.objects.filter(order_id=order.id, kind="order_confirmed", attempts__gte=1).first(),
        timeout=30,
        what=lambda: f"a failed send\n{mail.logs()}",
    )
    assert failed.status == "pending"
    assert "Connection refused" in failed.last_error or "ConnectionRefusedError" in failed.last_error
    assert mail.sink.count(order_id=order.id) == 0
    # when the server is back
    mail.sink.up()
    # then the sweep sends it, once
    sent = wait_until_sent(order, mail)
    assert mail.sink.count(order_id=order.id, kind="order_confirmed") == 1
    assert sent.last_error == ""


def terminate_the_sender_of(received: ReceivedMail, dsn: dict[str, object]) -> int:
    """Terminate the database session that holds this message's notification row while it waits for the SMTP answer.

    Run by the sink between receiving the message and answering 250, so the
    sender's next statement, marking the row sent, fails.
    """
    with psycopg.connect(**dsn, autocommit=True) as db:
        [(notification_id,)] = db.execute(
            "SELECT id FROM notifications_notification WHERE message_id = %s", (received.message_id,)
        ).fetchall()
        rows = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state = 'idle in transaction' AND query ILIKE %s AND query ILIKE %s",
            ("%FOR UPDATE SKIP LOCKED%", f"%{notification_id.hex}%"),  # Django sends a UUID as 32 hex digits
        ).fetchall()
    return sum(1 for (terminated,) in rows if terminated)


def test_a_crash_between_sending_and_marking_sent_resends_the_same_message_id_and_ends_sent(mail):
    # given an order, and a mail server that cuts the sender's database session as it accepts the first mail
    order = draft_order()
    db = connection.settings_dict
    dsn = {"dbname": db["NAME"], "user": db["USER"] or "postgres", "host": db["HOST"], "port": db["PORT"] or 5432}
    terminated: list[int] = []

    def cut_the_sender(received: ReceivedMail) -> None:
        if received.order_id == str(order.id) and received.kind == "order_confirmed" and not terminated:
            terminated.append(terminate_the_sender_of(received, dsn))

    mail.sink.on_message = cut_the_sender
    # when the order is confirmed
    order_confirm(order_id=order.id)
    # then the first send reached the sink but could not be marked sent, and the sweep sent it again
    sent = wait_until_sent(order, mail)
    assert terminated == [1], f"no sender session was cut\n{mail.logs()}"
    first, second = mail.sink.matching(order_id=order.id, kind="order_confirmed")
    assert first.message_id == second.message_id == sent.message_id
    assert "could not record sending" in mail.processes["worker"].output()
    # and the worker carries on with a fresh connection: the order ships and its shipped mail goes out
    wait_until_sent(order, mail, kind="order_shipped")
    assert mail.processes["worker"].alive()


def test_a_worker_killed_after_sending_leaves_the_mail_pending_and_the_sweep_resends_the_same_message(mail):
    # given an order, and a mail server that kills the sending worker as it accepts the first mail
    order = draft_order()
    worker = mail.processes["worker"]
    killed: list[bool] = []

    def kill_the_worker(received: ReceivedMail) -> None:
        if received.order_id == str(order.id) and received.kind == "order_confirmed" and not killed:
            os.killpg(worker.pid, signal.SIGKILL)
            killed.append(True)

    mail.sink.on_message = kill_the_worker
    # when the order is confirmed, and a new worker starts after the old one died
    order_confirm(order_id=order.id)
    wait_for(lambda: killed and not worker.alive(), timeout=30, what=lambda: f"the worker to be killed\n{mail.logs()}")
    assert confirmation_of(order).status == "pending"
    mail.processes["worker"] = start_worker(**mail.env)
    # then the sweep sends it again with the same Message-ID, and it ends sent
    sent = wait_until_sent(order, mail)
    first, second = mail.sink.matching(order_id=order.id, kind="order_confirmed")
    assert first.message_id == second.message_id == sent.message_id
