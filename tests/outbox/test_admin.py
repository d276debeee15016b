import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from outbox.models import Delivery, HandlerCircuit
from outbox.publishing import publish
from outbox.relay import fan_out
from tests.outbox.conftest import make_dead_letter
from tests.outbox.probe.events import Pinged, Stepped
from tests.support.deliveries import group_of, jams, make_dead_letter_of
from tests.support.deliveries import statuses_and_discarded as statuses

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


# grouped by cause

GROUPS_URL = "/admin/outbox/deadletter/groups/"


def test_the_dead_letter_list_links_to_the_letters_grouped_by_cause(client, dlq_operator):
    client.force_login(dlq_operator)
    page = client.get(reverse("admin:outbox_deadletter_changelist")).content.decode()
    assert f'<a href="{GROUPS_URL}">Grouped by cause</a>' in page
    assert reverse("admin:outbox_deadletter_groups") == GROUPS_URL


def test_the_grouped_page_shows_each_cause_with_its_count_times_pattern_and_an_example(client, dlq_operator):
    # given three jams and a letter of another cause
    letters = jams(3)
    make_dead_letter_of(ValueError("the probe is broken"), handler="probe.breakable")
    client.force_login(dlq_operator)
    # when
    response = client.get(GROUPS_URL)
    # then a row per group, largest first, with a form to retry or discard it
    assert response.status_code == 200
    assert [g.count for g in response.context["groups"]] == [3, 1]
    page = response.content.decode()
    row = page[page.index(f'data-group="{group_of(letters[0])}"') :].split("</tr>")[0]
    assert "probe.jammable" in row
    assert "RuntimeError: gear &lt;n&gt; of &lt;uuid&gt; is jammed" in row
    assert f"<summary>Example: delivery #{letters[-1].id}, the latest</summary>" in row
    assert "Traceback (most recent call last)" in row
    assert f'href="/admin/outbox/deadletter/?group={group_of(letters[0])}"' in row
    assert f"{letters[0].finished_at:%Y-%m-%d}<br>{letters[0].finished_at:%H:%M:%S}" in row
    assert 'name="limit"' in row
    assert 'value="retry"' in row
    assert 'value="discard"' in row
    assert 'name="csrfmiddlewaretoken"' in row


def test_a_groups_count_links_to_its_letters_in_the_dead_letter_list(client, dlq_operator):
    # given two jams and a letter of another cause
    letters = jams(2)
    other = make_dead_letter_of(ValueError("the probe is broken"), handler="probe.breakable")
    client.force_login(dlq_operator)
    # when the list is filtered to the jams' group
    response = client.get(reverse("admin:outbox_deadletter_changelist"), {"group": group_of(letters[0])})
    # then only they are listed, and the filter names the group
    assert response.status_code == 200
    assert sorted(d.id for d in response.context["cl"].result_list) == [d.id for d in letters]
    assert other.id not in [d.id for d in response.context["cl"].result_list]
    assert "probe.jammable: RuntimeError (2)" in response.content.decode()
    # and a group that is gone lists nothing
    gone = client.get(reverse("admin:outbox_deadletter_changelist"), {"group": "0123456789ab"})
    assert list(gone.context["cl"].result_list) == []


def test_an_operator_retries_the_oldest_few_of_a_group_from_the_page(client, dlq_operator):
    # given five jams
    letters = jams(5)
    client.force_login(dlq_operator)
    # when two are retried
    response = client.post(GROUPS_URL, {"group": group_of(letters[0]), "action": "retry", "limit": "2"}, follow=True)
    # then the two oldest are pending again, and the page says so
    assert response.redirect_chain == [(GROUPS_URL, 302)]
    assert statuses(letters) == [("pending", False)] * 2 + [("dead", False)] * 3
    [message] = [str(m) for m in response.context["messages"]]
    assert message == (
        "Retried 2 of 5 dead letters of probe.jammable (RuntimeError): sent round again with a fresh set of "
        "attempts; 3 remain."
    )
    assert [g.count for g in response.context["groups"]] == [3]


def test_an_operator_discards_a_whole_group_from_the_page(client, dlq_operator):
    letters = jams(3)
    client.force_login(dlq_operator)
    response = client.post(GROUPS_URL, {"group": group_of(letters[0]), "action": "discard", "limit": ""}, follow=True)
    assert statuses(letters) == [("dead", True)] * 3
    assert {d.resolved_by for d in Delivery.objects.filter(id__in=[x.id for x in letters])} == {dlq_operator}
    assert "Discarded 3 of 3 dead letters of probe.jammable (RuntimeError): kept, marked resolved; 0 remain." in [
        str(m) for m in response.context["messages"]
    ]


@pytest.mark.parametrize(
    ("form", "says"),
    [
        (
            {"action": "retry", "limit": "0"},
            "Nothing was done: limit: Ensure this value is greater than or equal to 1.",
        ),
        ({"action": "retry", "limit": "a few"}, "Nothing was done: limit: Give the limit as a whole number"),
        ({"action": "delete", "limit": ""}, "Nothing was done: action: Select a valid choice."),
        ({"action": "retry", "group": "0123456789ab"}, "That group has no dead letters any more: nothing was done."),
    ],
)
def test_a_bad_form_does_nothing_and_says_why(client, dlq_operator, form, says):
    letters = jams(2)
    client.force_login(dlq_operator)
    response = client.post(GROUPS_URL, {"group": group_of(letters[0]), **form}, follow=True)
    assert any(str(m).startswith(says) for m in response.context["messages"])
    assert statuses(letters) == [("dead", False)] * 2


def test_staff_without_the_retry_permission_see_the_groups_but_cannot_act_on_them(client):
    # given staff who may view dead letters but not retry them
    letters = jams(2)
    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(user)
    # when
    page = client.get(GROUPS_URL)
    refused = client.post(GROUPS_URL, {"group": group_of(letters[0]), "action": "retry"})
    # then the page has no forms, a post is forbidden, and nothing changed
    assert page.status_code == 200
    assert 'name="limit"' not in page.content.decode()
    assert refused.status_code == 403
    assert statuses(letters) == [("dead", False)] * 2


def test_staff_without_any_outbox_permission_may_not_see_the_groups(client):
    client.force_login(get_user_model().objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(GROUPS_URL).status_code == 403


# held deliveries


def test_a_held_delivery_names_the_dead_delivery_it_waits_for(client, dlq_operator):
    # given steps 1..3 of one thing, step 1 dead
    thing = uuid.uuid4()
    with transaction.atomic():
        events = [publish(Stepped(thing_id=thing, seq=seq)) for seq in (1, 2, 3)]
    fan_out(batch_size=10)
    first, _, third = (Delivery.objects.get(event=e) for e in events)
    Delivery.objects.filter(id=first.id).update(status="dead", last_error="RuntimeError: step 1 cannot be recorded")
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    # when
    listing = client.get(reverse("admin:outbox_delivery_changelist"), {"handler": "probe.record_step"})
    page = client.get(reverse("admin:outbox_delivery_change", args=[third.id])).content.decode()
    # then the list and the delivery's page say which one holds it, with a link
    held = f'held by delivery <a href="/admin/outbox/delivery/{first.id}/change/">#{first.id}</a>'
    rows = listing.content.decode()
    assert rows.count(f"{held} (dead: RuntimeError: step 1 cannot be recorded)") == 2
    assert f"{held} (dead: RuntimeError: step 1 cannot be recorded)" in page


def test_the_delivery_list_finds_what_its_held_deliveries_wait_for_in_one_query(client):
    # given ten things, each with a dead first step and a held second one
    for _ in range(10):
        with transaction.atomic():
            thing = uuid.uuid4()
            first = publish(Stepped(thing_id=thing, seq=1))
            publish(Stepped(thing_id=thing, seq=2))
        fan_out(batch_size=10)
        Delivery.objects.filter(event=first).update(status="dead")
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    url = reverse("admin:outbox_delivery_changelist")
    # when
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, {"handler": "probe.record_step"}).content.decode()
    # then
    assert page.count("held by delivery") == 10
    assert sum('AS "held_by"' in q["sql"] for q in queries) == 1
