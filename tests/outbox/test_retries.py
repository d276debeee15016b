"""Retries, backoff and the dead-letter queue, through a real worker and relay."""

import re
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from outbox.models import Delivery
from outbox.publishing import publish
from outbox.selectors import dead_letter_groups
from outbox.services import dead_letter_group_retry
from tests.outbox.conftest import wait_until_finished
from tests.outbox.probe.events import Broke, Flaked, Jammed
from tests.outbox.probe.models import Effect, Switch
from tests.support.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]


def _publish(event):
    with transaction.atomic():
        return publish(event)


def _dead_breakable(live_outbox) -> Delivery:
    """A probe.breakable delivery that failed all its 3 attempts."""
    Switch.objects.update_or_create(name="broken", defaults={"on": True})
    row = _publish(Broke(thing_id=uuid.uuid4()))
    [delivery] = wait_until_finished(row, what=live_outbox.logs)
    assert delivery.status == "dead"
    return delivery


def test_a_handler_that_fails_twice_then_succeeds_ends_done_after_three_growing_delays(live_outbox, redis):
    # given a handler that fails its first two attempts (backoff base 0.3 s)
    row = _publish(Flaked(thing_id=uuid.uuid4(), fail_times=2))
    # when
    [delivery] = wait_until_finished(row, what=live_outbox.logs)
    # then
    assert (delivery.status, delivery.attempts) == ("done", 3)
    assert "flaky failure 2 of 2" in delivery.last_error  # the history of the last failure is kept
    assert Effect.objects.filter(handler="flaky").count() == 1
    times = [float(t) for t in redis.lrange(f"probe:flaky-times:{row.event_id}", 0, -1)]
    first_delay, second_delay = times[1] - times[0], times[2] - times[1]
    # each delay at least its backoff (base x 2^(n-1), jittered down to 80%): they grow whatever the scheduling
    assert (first_delay >= 0.3 * 0.8, second_delay >= 0.6 * 0.8) == (True, True), (first_delay, second_delay)
    # and its trace lists both failed attempts, each with its own error
    out = StringIO()
    call_command("outbox_trace", str(row.event_id), stdout=out)
    failed = [line.strip() for line in out.getvalue().splitlines() if line.strip().startswith("! ")]
    assert [re.sub(r" at [\d:. -]+,", "", line) for line in failed] == [
        f"! attempt {n} failed handler error [RuntimeError]: RuntimeError: flaky failure {n} of 2" for n in (1, 2)
    ]


def test_a_handler_that_always_fails_ends_dead_with_its_traceback(live_outbox):
    delivery = _dead_breakable(live_outbox)
    assert delivery.attempts == 3
    assert "ValueError: the probe is broken" in delivery.last_error
    assert 'raise ValueError("the probe is broken' in delivery.traceback
    assert not Effect.objects.filter(handler="breakable").exists()


def test_retry_from_the_admin_action_delivers_once_the_bug_is_fixed(live_outbox, client, dlq_operator):
    # given a dead letter, and its cause fixed
    delivery = _dead_breakable(live_outbox)
    Switch.objects.filter(name="broken").update(on=False)
    # when an operator runs the admin's retry action on it
    client.force_login(dlq_operator)
    response = client.post(
        reverse("admin:outbox_deadletter_changelist"), {"action": "retry", "_selected_action": [delivery.id]}
    )
    # then
    assert response.status_code == 302
    wait_for(lambda: Delivery.objects.get(id=delivery.id).status == "done", timeout=20, what=live_outbox.logs)
    assert Delivery.objects.get(id=delivery.id).attempts == 1  # retry starts a fresh count
    assert Effect.objects.filter(handler="breakable").count() == 1


def test_retry_from_the_command_delivers_once_the_bug_is_fixed(live_outbox, capsys):
    delivery = _dead_breakable(live_outbox)
    Switch.objects.filter(name="broken").update(on=False)
    call_command("outbox_dlq", "retry", "--handler", "probe.breakable")
    assert "1 dead deliveries sent round again" in capsys.readouterr().out
    wait_for(lambda: Delivery.objects.get(id=delivery.id).status == "done", timeout=20, what=live_outbox.logs)
    assert Effect.objects.filter(handler="breakable").count() == 1


def test_retrying_while_the_bug_is_still_there_ends_dead_again(live_outbox):
    delivery = _dead_breakable(live_outbox)
    call_command("outbox_dlq", "retry", "--id", str(delivery.id))
    wait_for(
        lambda: Delivery.objects.filter(id=delivery.id, status="dead", attempts=3).exists(),
        timeout=20,
        what=live_outbox.logs,
    )
    assert not Effect.objects.filter(handler="breakable").exists()


def test_dead_letters_of_two_causes_are_two_groups_and_a_mended_group_is_retried_one_first_then_the_rest(
    live_outbox,
):
    # given a handler that fails two ways while jammed: three events on gears, two on belts (one attempt each)
    Switch.objects.create(name="jammed", on=True)
    gears = [_publish(Jammed(thing_id=uuid.uuid4(), part="gear", number=n)) for n in (3, 12, 40)]
    belts = [_publish(Jammed(thing_id=uuid.uuid4(), part="belt", number=n)) for n in (1, 2)]
    for row in gears + belts:
        [delivery] = wait_until_finished(row, what=live_outbox.logs)
        assert delivery.status == "dead"
    # when their dead letters are grouped
    groups = {group.error_type: group for group in dead_letter_groups()}
    # then there is one group per cause, whatever the ids and numbers in the messages
    assert {kind: (g.handler, g.count, g.error_pattern) for kind, g in groups.items()} == {
        "RuntimeError": ("probe.jammable", 3, "RuntimeError: gear <n> of <uuid> is jammed"),
        "tests.outbox.probe.handlers.BeltMissing": (
            "probe.jammable",
            2,
            "BeltMissing: belt <str> of <uuid> is missing",
        ),
    }
    # when the cause is mended and one gear is retried
    Switch.objects.filter(name="jammed").update(on=False)
    assert dead_letter_group_retry(group=groups["RuntimeError"], limit=1) == 1
    # then the oldest gear (the first delivery made) is handled, and the others are still dead
    oldest, *others = Delivery.objects.filter(event__in=gears).order_by("id")
    wait_for(lambda: Delivery.objects.filter(id=oldest.id, status="done").exists(), timeout=20, what=live_outbox.logs)
    assert [Delivery.objects.get(id=d.id).status for d in others] == ["dead"] * 2
    assert [Delivery.objects.get(event=row).status for row in belts] == ["dead"] * 2
    # when the rest of that group, then the other group, are retried
    assert dead_letter_group_retry(group=groups["RuntimeError"]) == 2
    assert dead_letter_group_retry(group=groups["tests.outbox.probe.handlers.BeltMissing"]) == 2
    # then every one is handled, once, and no group is left
    for row in gears + belts:
        [delivery] = wait_until_finished(row, what=live_outbox.logs)
        assert (delivery.status, delivery.attempts) == ("done", 1)
    assert Effect.objects.filter(handler="jammable").count() == 5
    assert list(dead_letter_groups()) == []
