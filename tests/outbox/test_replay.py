"""``outbox_replay``: past events delivered again to one handler, once, resumably, without touching the others.

The history here is written as an earlier deployment left it: ``probe.Archived``
events, fanned out and handled by ``probe.archive_old`` only, before
``probe.archive_new`` (which wants all of it) and ``probe.tally`` (a read model
with a ``rebuild``) were subscribed.
"""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from outbox.models import Delivery, InboxEntry, OutboxEvent, ReplayProgress
from outbox.replay import ReplayStep, replay_plan, replay_scope, replay_start, replay_step
from tests.outbox.probe.events import Archived
from tests.outbox.probe.models import Effect
from tests.support.commands import manage
from tests.support.database import every_table
from tests.support.events import outbox_row

NEW, OLD, TALLY = "probe.archive_new", "probe.archive_old", "probe.tally"


def archived_history(count: int, *, handled_by: tuple[str, ...] = (OLD,)) -> list[OutboxEvent]:
    """``count`` relayed ``probe.Archived`` events a second apart, each delivered to and handled by ``handled_by``."""
    now = timezone.now()
    rows = [outbox_row(Archived(thing_id=uuid.uuid4(), seq=seq)) for seq in range(count)]
    for seq, row in enumerate(rows):
        row.occurred_at, row.relayed_at = now - timedelta(seconds=count - seq), now
    events = OutboxEvent.objects.bulk_create(rows, batch_size=2_000)
    done = {"queue": "probe", "status": "done", "attempts": 1, "due_at": now, "finished_at": now}
    Delivery.objects.bulk_create(
        [Delivery(event=e, handler=h, **done) for e in events for h in handled_by], batch_size=2_000
    )
    InboxEntry.objects.bulk_create(
        [InboxEntry(handler=h, event_id=e.event_id) for e in events for h in handled_by], batch_size=2_000
    )
    return events


def deliveries_of_others(handler: str = NEW) -> list[tuple]:
    """Every delivery of every other handler, as the database has it now."""
    fields = ("id", "handler", "queue", "status", "attempts", "due_at", "finished_at", "dispatch_token")
    return list(Delivery.objects.exclude(handler=handler).order_by("id").values_list(*fields))


def effect_counts(handler: str) -> dict[uuid.UUID, int]:
    """How many effects the probe handler left per event."""
    rows = Effect.objects.filter(handler=handler).values("event_id").annotate(n=Count("id"))
    return {row["event_id"]: row["n"] for row in rows}


def replay_all(scope, *, batch_size: int = 100) -> list[ReplayStep]:
    progress = replay_start(scope=scope)
    steps = [replay_step(scope=scope, progress_id=progress.id, batch_size=batch_size)]
    while not steps[-1].finished:
        steps.append(replay_step(scope=scope, progress_id=progress.id, batch_size=batch_size))
    return steps


# The service, in the test's transaction (what reaches the workers is proved further down) -------------------


@pytest.mark.django_db
def test_a_replay_creates_pending_deliveries_of_that_handler_only_on_its_replay_queue():
    # given five relayed events: one delivered to the new handler already, one in its inbox; and one unrelayed
    events = archived_history(5)
    Delivery.objects.create(event=events[0], handler=NEW, queue="probe", due_at=timezone.now())
    InboxEntry.objects.create(handler=NEW, event_id=events[1].event_id)
    unrelayed = outbox_row(Archived(thing_id=uuid.uuid4()))
    unrelayed.save()
    others = deliveries_of_others()
    # when
    steps = replay_all(replay_scope(handler=NEW))
    # then
    assert steps == [ReplayStep(scanned=5, created=3, finished=True)]
    replayed = Delivery.objects.filter(handler=NEW, queue="probe.replay").order_by("event_id")
    assert [d.event_id for d in replayed] == [e.id for e in events[2:]]
    assert {(d.status, d.attempts, d.ordering_key) for d in replayed} == {("pending", 0, None)}
    assert not Delivery.objects.filter(event=unrelayed).exists()  # the relay's, when it fans it out
    assert deliveries_of_others() == others


@pytest.mark.django_db
def test_a_replay_started_again_goes_on_from_its_last_batch_and_a_finished_one_creates_nothing():
    # given a replay stopped after its first batch of two
    events = archived_history(5)
    scope = replay_scope(handler=NEW)
    first = replay_start(scope=scope)
    replay_step(scope=scope, progress_id=first.id, batch_size=2)
    # when it is started again
    resumed = replay_start(scope=scope)
    steps = replay_all(scope, batch_size=2)
    # then it went on after the second event, and every event has one delivery
    assert (resumed.id, resumed.cursor, resumed.scanned) == (first.id, events[1].id, 2)
    assert [s.created for s in steps] == [2, 1]
    per_event = Delivery.objects.filter(handler=NEW).values("event").annotate(n=Count("id"))
    assert sorted(row["n"] for row in per_event) == [1] * 5
    # when the finished replay runs once more, after its deliveries were handled
    Delivery.objects.filter(handler=NEW).update(status="done", finished_at=timezone.now())
    again = replay_all(scope)
    # then
    assert sum(s.created for s in again) == 0
    assert Delivery.objects.filter(handler=NEW).count() == 5


@pytest.mark.django_db
def test_since_is_inclusive_until_exclusive_and_aggregate_picks_one_aggregates_events():
    # given four events a second apart, each of an aggregate of its own
    events = archived_history(4)
    # when
    steps = replay_all(replay_scope(handler=NEW, since=events[1].occurred_at, until=events[3].occurred_at))
    # then
    assert sum(s.created for s in steps) == 2
    assert sorted(Delivery.objects.filter(handler=NEW).values_list("event_id", flat=True)) == [
        events[1].id,
        events[2].id,
    ]
    assert replay_plan(replay_scope(handler=NEW, aggregate=events[3].aggregate_id)) == (1, 1)
    assert replay_plan(replay_scope(handler=NEW, aggregate=events[1].aggregate_id)) == (1, 0)


@pytest.mark.django_db
def test_a_rebuild_empties_the_read_model_and_runs_every_finished_delivery_again():
    # given a tally that handled three events, then drifted (an effect lost, a stray one)
    events = archived_history(3, handled_by=(OLD, TALLY))
    for event in events[1:]:
        Effect.objects.create(handler="tally", event_id=event.event_id, aggregate_id=event.aggregate_id)
    Effect.objects.create(handler="tally", event_id=uuid.uuid4(), aggregate_id="stray")
    others = deliveries_of_others(TALLY)
    # when
    steps = replay_all(replay_scope(handler=TALLY, rebuild=True))
    # then the read model and the handler's inbox are empty, and its deliveries wait on the replay queue
    assert not Effect.objects.filter(handler="tally").exists()
    assert not InboxEntry.objects.filter(handler=TALLY).exists()
    assert InboxEntry.objects.filter(handler=OLD).count() == 3
    assert sum(s.created for s in steps) == 3
    tally = Delivery.objects.filter(handler=TALLY)
    assert {(d.status, d.queue, d.attempts, d.finished_at) for d in tally} == {("pending", "probe.replay", 0, None)}
    assert deliveries_of_others(TALLY) == others


@pytest.mark.django_db
def test_staff_see_how_far_each_replay_got_in_the_admin(admin_client):
    # given a replay stopped after its first batch
    archived_history(3)
    scope = replay_scope(handler=NEW)
    replay_step(scope=scope, progress_id=replay_start(scope=scope).id, batch_size=2)
    # when
    page = admin_client.get(reverse("admin:outbox_replayprogress_changelist")).content.decode()
    # then
    assert "probe.archive_new" in page
    assert "replay type=probe.Archived" in page
    assert "probe.replay" in page


# Bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--handler", "probe.nobody"], "No handler named 'probe.nobody' is subscribed here"),
        (["--handler", NEW, "--since", "yesterday"], "--since 'yesterday' is not a date or time"),
        (["--handler", NEW, "--until", "2026-13-40"], "--until '2026-13-40' is not a date or time"),
        (["--handler", NEW, "--since", "2026-12-02", "--until", "2026-12-01"], "is not before --until"),
        (["--handler", NEW, "--type", "probe.Pinged"], "probe.archive_new subscribes to probe.Archived, not to"),
        (["--handler", NEW, "--rebuild"], "probe.archive_new declares no read model to rebuild"),
        (["--handler", TALLY, "--rebuild", "--since", "2026-12-01"], "--rebuild delivers the whole log again"),
        (["--history", "--since", "2026-12-01"], "--history takes no --since"),
        (["--handler", NEW, "--batch-size", "0"], "--batch-size is from 1 to 10000, not 0"),
        (["--handler", NEW, "--window", "-5"], "--window is from 1 to 1000000, not -5"),
    ],
)
def test_bad_input_stops_the_command_with_exit_2_and_changes_nothing(args, message):
    # given a history the replay could otherwise work on
    archived_history(3, handled_by=(OLD, TALLY))
    before = every_table()
    # when
    with pytest.raises(CommandError) as refused:
        call_command("outbox_replay", *args, stdout=StringIO(), stderr=StringIO())
    # then
    assert refused.value.returncode == 2
    assert message in str(refused.value)
    assert str(refused.value).endswith("Nothing was changed.")
    assert every_table() == before


@pytest.mark.django_db
def test_a_dry_run_says_what_it_would_deliver_and_changes_nothing():
    # given three events, one of them handled by the new handler already
    events = archived_history(3)
    InboxEntry.objects.create(handler=NEW, event_id=events[0].event_id)
    before, out = every_table(), StringIO()
    # when
    call_command("outbox_replay", "--handler", NEW, "--dry-run", stdout=out)
    # then
    assert out.getvalue() == (
        f"{NEW}: 3 matching events; would create 2 deliveries on queue probe.replay "
        "(1 delivered or handled already). Nothing was changed.\n"
    )
    assert every_table() == before
    assert not ReplayProgress.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_run_from_the_shell_an_unknown_handler_exits_2_with_one_line_and_nothing_changes(no_live_outbox):
    archived_history(3)
    before = every_table()
    # when
    result = manage("outbox_replay", "--handler", "probe.nobody")
    # then
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "CommandError: No handler named 'probe.nobody' is subscribed here: `outbox_status` lists the handlers. "
        "Nothing was changed."
    ]
    assert every_table() == before
