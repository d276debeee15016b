import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from outbox.models import Delivery, InboxEntry, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from outbox.runner import run_deliveries
from tests.outbox.conftest import make_dead_letter
from tests.outbox.probe.events import Pinged

pytestmark = pytest.mark.django_db


def test_outbox_status_prints_open_work_per_handler(capsys):
    make_dead_letter()
    with transaction.atomic():
        publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=10)
    call_command("outbox_status")
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert lines["probe.breakable"][:3] == ["0", "0", "1"]
    assert lines["probe.record_a"][:3] == ["0", "1", "0"]
    assert lines["probe.flaky"] == ["0", "0", "0", "-"]


def test_outbox_dlq_lists_dead_letters_with_their_error(capsys):
    delivery = make_dead_letter()
    call_command("outbox_dlq", "list")
    out = capsys.readouterr().out
    assert f"{delivery.id}" in out
    assert "probe.breakable" in out
    assert "ValueError: the probe is broken" in out
    assert "1 dead deliveries" in out


def test_outbox_dlq_retry_resets_the_dead_letter(capsys):
    delivery = make_dead_letter()
    call_command("outbox_dlq", "retry", "--all")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)


def test_outbox_dlq_retry_of_a_delivery_that_is_not_dead_is_an_error():
    with pytest.raises(CommandError, match="is not a dead letter"):
        call_command("outbox_dlq", "retry", "--id", "999999")


def test_outbox_prune_deletes_old_finished_work_but_keeps_events(capsys):
    # given a done delivery and inbox row from 40 days ago, and a fresh one
    old, fresh = (Pinged(thing_id=uuid.uuid4()) for _ in range(2))
    with transaction.atomic():
        old_row, fresh_row = publish(old), publish(fresh)
    fan_out(batch_size=10)
    run_deliveries(list(Delivery.objects.values_list("id", flat=True)))
    long_ago = timezone.now() - timedelta(days=40)
    Delivery.objects.filter(event=old_row).update(finished_at=long_ago)
    InboxEntry.objects.filter(event_id=old_row.event_id).update(handled_at=long_ago)
    # when
    call_command("outbox_prune", "--days", "30")
    # then
    assert "pruned 3 done deliveries and 3 inbox rows" in capsys.readouterr().out
    assert not Delivery.objects.filter(event=old_row).exists()
    assert Delivery.objects.filter(event=fresh_row).count() == 3
    assert OutboxEvent.objects.count() == 2
