import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.urls import reverse

from outbox.models import Delivery, HandlerCircuit
from outbox.publishing import publish
from outbox.relay import fan_out
from tests.outbox.conftest import make_dead_letter
from tests.outbox.probe.events import Pinged

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_letter() -> Delivery:
    return make_dead_letter()


def test_the_dead_letter_page_shows_payload_error_and_traceback(client, dlq_operator, dead_letter):
    client.force_login(dlq_operator)
    page = client.get(reverse("admin:outbox_deadletter_change", args=[dead_letter.id])).content.decode()
    assert str(dead_letter.event.event_id) in page
    assert "the probe is broken" in page
    assert "Traceback" in page
    assert "thing_id" in page


def test_the_dead_letter_list_filters_by_handler(client, dlq_operator, dead_letter):
    client.force_login(dlq_operator)
    url = reverse("admin:outbox_deadletter_changelist")
    assert "probe.breakable" in client.get(url, {"handler": "probe.breakable"}).content.decode()
    assert "0 dead letters" in client.get(url, {"handler": "probe.record_a"}).content.decode()


def test_discard_keeps_the_letter_and_records_who_and_when(client, dlq_operator, dead_letter):
    client.force_login(dlq_operator)
    client.post(
        reverse("admin:outbox_deadletter_changelist"), {"action": "discard", "_selected_action": [dead_letter.id]}
    )
    dead_letter.refresh_from_db()
    assert dead_letter.status == "dead"
    assert dead_letter.resolved_by == dlq_operator
    assert dead_letter.resolved_at is not None


def test_staff_without_the_permission_cannot_retry(client, dead_letter):
    # given staff with view rights but not outbox.retry_delivery
    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client.force_login(user)
    # when
    response = client.post(
        reverse("admin:outbox_delivery_changelist"), {"action": "retry", "_selected_action": [dead_letter.id]}
    )
    # then the action is not offered and nothing changed
    assert response.status_code in (200, 302)
    dead_letter.refresh_from_db()
    assert dead_letter.status == "dead"
    assert client.get(reverse("admin:outbox_delivery_changelist")).context["action_form"] is None


def test_an_events_page_summarises_its_deliveries(client, dlq_operator, dead_letter):
    with transaction.atomic():
        row = publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=10)
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    page = client.get(reverse("admin:outbox_outboxevent_changelist")).content.decode()
    assert "probe.breakable dead (failed x3)" in page
    assert "probe.record_a dispatched" in page
    assert row.type in page


@pytest.fixture
def handler_operator(db):
    """Staff allowed to pause and resume handlers, and nothing else."""
    user = get_user_model().objects.create_user("switcher", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="operate_handler"))
    return user


def test_the_circuits_page_lists_every_handler_with_its_state(client, handler_operator):
    HandlerCircuit.objects.create(handler="probe.call_downstream", state="open", consecutive_failures=4)
    client.force_login(handler_operator)
    page = client.get(reverse("admin:outbox_handlercircuit_changelist")).content.decode()
    assert "probe.call_downstream" in page
    assert "probe.record_c" in page  # never failed, listed all the same
    assert ">open<" in page


def test_staff_with_the_permission_pause_and_resume_handlers(client, handler_operator):
    client.force_login(handler_operator)
    url = reverse("admin:outbox_handlercircuit_changelist")
    client.get(url)  # lists, and so creates, every handler's row
    circuit = HandlerCircuit.objects.get(handler="probe.record_a")
    client.post(url, {"action": "pause", "_selected_action": [circuit.id]})
    circuit.refresh_from_db()
    assert (circuit.paused, circuit.paused_by) == (True, handler_operator)
    client.post(url, {"action": "resume", "_selected_action": [circuit.id]})
    circuit.refresh_from_db()
    assert not circuit.paused


def test_staff_without_the_permission_cannot_pause(client, dlq_operator):
    dlq_operator.user_permissions.add(Permission.objects.get(codename="view_handlercircuit"))
    client.force_login(dlq_operator)
    url = reverse("admin:outbox_handlercircuit_changelist")
    client.get(url)
    circuit = HandlerCircuit.objects.get(handler="probe.record_a")
    client.post(url, {"action": "pause", "_selected_action": [circuit.id]})
    circuit.refresh_from_db()
    assert not circuit.paused
    assert client.get(url).context["action_form"] is None
