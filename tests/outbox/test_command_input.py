"""The outbox's commands given values they cannot use: exit code 2, one line saying what to give, nothing changed."""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from outbox.events import registry
from outbox.models import Delivery, InboxEntry, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from outbox.runner import run_deliveries
from tests.outbox.probe.events import Pinged
from tests.support.commands import manage
from tests.support.database import every_table

# The apps whose events this project registers, as the catalogue names them ("probe." alone in the outbox's own).
PREFIXES = ", ".join(sorted({f"{name.split('.')[0]}." for name in registry.names()}))


def finished_long_ago() -> OutboxEvent:
    """An event whose deliveries and inbox rows finished 40 days ago: what any prune may delete."""
    with transaction.atomic():
        row = publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=10)
    run_deliveries(list(Delivery.objects.filter(event=row).values_list("id", flat=True)))
    long_ago = timezone.now() - timedelta(days=40)
    Delivery.objects.filter(event=row).update(finished_at=long_ago)
    InboxEntry.objects.filter(event_id=row.event_id).update(handled_at=long_ago)
    return row


def unrelayed() -> OutboxEvent:
    with transaction.atomic(), override_settings(OUTBOX={**settings.OUTBOX, "DISPATCH_ON_COMMIT": False}):
        return publish(Pinged(thing_id=uuid.uuid4()))


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["-1", "nan", "inf", "-inf", "36501", "1e300"])
def test_prune_refuses_days_it_cannot_count_back_and_deletes_nothing(days):
    # given done work that any prune would delete
    row = finished_long_ago()
    # when
    with pytest.raises(CommandError) as refused:
        call_command("outbox_prune", f"--days={days}", stdout=StringIO())
    # then
    assert refused.value.returncode == 2
    assert str(refused.value) == f"--days must be a number of days from 0 to 36500, not {float(days):g}."
    assert Delivery.objects.filter(event=row, status="done").count() == 3
    assert InboxEntry.objects.filter(event_id=row.event_id).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "3601"])
def test_the_relay_refuses_a_poll_interval_it_cannot_keep_and_relays_nothing(seconds):
    # given an event waiting to be relayed
    row = unrelayed()
    # when
    with pytest.raises(CommandError) as refused:
        call_command("outbox_relay", "--once", f"--poll-seconds={seconds}", stdout=StringIO())
    # then
    assert refused.value.returncode == 2
    assert str(refused.value) == (
        "--poll-seconds (default OUTBOX_RELAY_POLL_SECONDS) must be a number of seconds above 0 and at most 3600, "
        f"not {float(seconds):g}."
    )
    row.refresh_from_db()
    assert row.relayed_at is None
    assert not Delivery.objects.filter(event=row).exists()


def test_the_catalogue_refuses_a_prefix_no_event_type_has():
    with pytest.raises(CommandError) as refused:
        call_command("outbox_catalogue", prefix="order.", stdout=StringIO())
    assert refused.value.returncode == 2
    assert str(refused.value) == f"No event type starts with 'order.'; each starts with one of: {PREFIXES}"


@pytest.fixture
def committed_work(transactional_db, no_live_outbox) -> None:
    """Done work and an unrelayed event, committed for a command run from the shell to see (no relay about)."""
    finished_long_ago()
    unrelayed()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["outbox_prune", "--days", "-1"], "CommandError: --days must be a number of days from 0 to 36500, not -1."),
        (
            ["outbox_relay", "--once", "--poll-seconds", "0"],
            "CommandError: --poll-seconds (default OUTBOX_RELAY_POLL_SECONDS) must be a number of seconds above 0 "
            "and at most 3600, not 0.",
        ),
        (
            ["outbox_catalogue", "--prefix", "order."],
            "CommandError: No event type starts with 'order.'; each starts with one of: {prefixes}",
        ),
    ],
    ids=["prune", "relay", "catalogue"],
)
def test_run_from_the_shell_a_bad_value_exits_2_with_one_line_and_changes_nothing(committed_work, args, line):
    before = every_table()
    # when
    result = manage(*args)
    # then
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line.format(prefixes=PREFIXES)]
    assert every_table() == before


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["outbox_prune", "--days", "a month"], "argument --days: invalid float value: 'a month'"),
        (["outbox_relay", "--poll-seconds", "1s"], "argument --poll-seconds: invalid float value: '1s'"),
        (["outbox_prune", "--dyas", "30"], "unrecognized arguments: --dyas 30"),
    ],
    ids=["prune days not a number", "relay seconds not a number", "prune misspelt flag"],
)
def test_run_from_the_shell_a_value_that_does_not_parse_exits_2_naming_the_option(committed_work, args, error):
    before = every_table()
    result = manage(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"manage.py {args[0]}: error: {error}"
    assert every_table() == before
