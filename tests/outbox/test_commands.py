import subprocess
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from outbox.models import Delivery, HandlerCircuit, InboxEntry, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from outbox.runner import run_deliveries
from tests.outbox.conftest import make_dead_letter
from tests.outbox.probe.events import Pinged
from tests.support.deliveries import group_of, jams, make_dead_letter_of
from tests.support.deliveries import statuses_and_discarded as statuses
from tests.support.processes import ROOT, manage_py, process_env

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
    assert lines["probe.flaky"] == ["0", "0", "0", "-", "closed"]


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
    with pytest.raises(CommandError, match="is not a dead letter") as error:
        call_command("outbox_dlq", "retry", "--id", "999999")
    assert error.value.returncode == 2


def test_outbox_dlq_groups_lists_each_cause_with_its_id_count_and_pattern(capsys):
    # given three jams and a letter of another cause
    letters = jams(3)
    make_dead_letter_of(ValueError("the probe is broken"), handler="probe.breakable")
    # when
    call_command("outbox_dlq", "groups")
    # then a header, the groups largest first, and a total
    header, first, second, total = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["group", "handler", "type", "count"]
    assert first.split()[:4] == [group_of(letters[0]), "probe.jammable", "RuntimeError", "3"]
    assert first.endswith("  RuntimeError: gear <n> of <uuid> is jammed")
    assert second.split()[1:4] == ["probe.breakable", "ValueError", "1"]
    assert total == "2 groups, 4 dead deliveries"


def test_outbox_dlq_groups_filters_by_handler(capsys):
    jams(1)
    call_command("outbox_dlq", "groups", "--handler", "probe.breakable")
    assert capsys.readouterr().out.splitlines()[-1] == "0 groups, 0 dead deliveries"


def test_outbox_dlq_retries_some_of_a_group_then_the_rest(capsys):
    # given five jams
    letters = jams(5)
    # when two are retried, then the rest
    call_command("outbox_dlq", "retry", "--group", group_of(letters[0]), "--limit", "2")
    first = capsys.readouterr().out
    after_two = statuses(letters)
    call_command("outbox_dlq", "retry", "--group", group_of(letters[0]))
    # then
    assert first == "Retried 2 of 5 dead deliveries of probe.jammable (RuntimeError); 3 remain\n"
    assert after_two == [("pending", False)] * 2 + [("dead", False)] * 3
    assert capsys.readouterr().out == "Retried 3 of 3 dead deliveries of probe.jammable (RuntimeError); 0 remain\n"
    assert statuses(letters) == [("pending", False)] * 5


def test_outbox_dlq_discards_one_letter_a_handlers_a_groups_or_all(capsys):
    # given jams, and letters of another handler
    letters = jams(4)
    others = [make_dead_letter_of(ValueError("the probe is broken"), handler="probe.breakable") for _ in range(2)]
    # when one letter, then two of the group are discarded
    call_command("outbox_dlq", "discard", "--id", str(letters[0].id))
    call_command("outbox_dlq", "discard", "--group", group_of(letters[0]), "--limit", "2")
    # then they are kept, dead and resolved; the rest are still dead letters
    assert statuses(letters) == [("dead", True)] * 3 + [("dead", False)]
    # when one handler's, then all are discarded
    call_command("outbox_dlq", "discard", "--handler", "probe.breakable")
    assert statuses(others) == [("dead", True)] * 2
    call_command("outbox_dlq", "discard", "--all")
    assert statuses(letters) == [("dead", True)] * 4
    assert capsys.readouterr().out.splitlines() == [
        "1 dead deliveries discarded (kept, marked resolved)",
        "Discarded 2 of 3 dead deliveries of probe.jammable (RuntimeError); 1 remain",
        "2 dead deliveries discarded (kept, marked resolved)",
        "1 dead deliveries discarded (kept, marked resolved)",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["retry", "--group", "0123456789ab"], "There is no dead-letter group 0123456789ab"),
        (["discard", "--group", "nonsense"], "There is no dead-letter group nonsense"),
        (["discard", "--id", "999999999"], "Delivery 999999999 is not a dead letter: there is no such delivery."),
        (["retry", "--handler", "probe.nobody"], "No handler named 'probe.nobody' is subscribed"),
        (["discard", "--handler", "probe.nobody"], "No handler named 'probe.nobody' is subscribed"),
        (["retry", "--all", "--limit", "5"], "--limit goes with --group only"),
        (["discard", "--handler", "probe.jammable", "--limit", "5"], "--limit goes with --group only"),
        (["retry", "--group", "GROUP", "--limit", "0"], "--limit is at least 1, not 0"),
    ],
)
def test_outbox_dlq_refuses_what_it_cannot_act_on_with_exit_status_2_changing_nothing(arguments, message):
    # given
    letters = jams(2)
    arguments = [group_of(letters[0]) if a == "GROUP" else a for a in arguments]
    # when
    with pytest.raises(CommandError) as error:
        call_command("outbox_dlq", *arguments)
    # then
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
    assert error.value.returncode == 2
    assert statuses(letters) == [("dead", False)] * 2


def test_outbox_dlq_discard_of_a_letter_discarded_already_is_refused():
    [letter] = jams(1)
    call_command("outbox_dlq", "discard", "--id", str(letter.id))
    with pytest.raises(CommandError, match=f"Delivery {letter.id} is not a dead letter: it was discarded at"):
        call_command("outbox_dlq", "discard", "--id", str(letter.id))


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["discard", "--group", "0123456789ab"], "CommandError: There is no dead-letter group 0123456789ab"),
        (["retry", "--group", "0123456789ab", "--limit", "some"], "argument --limit: invalid int value: 'some'"),
        (["discard", "--id", "1", "--all"], "argument --all: not allowed with argument --id"),
    ],
)
def test_from_a_shell_bad_flags_and_unknown_groups_exit_with_status_2(arguments, says):
    result = _manage("outbox_dlq", *arguments)
    assert result.returncode == 2
    assert says in result.stderr


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


def test_fail_on_passes_quietly_when_nothing_is_wrong(capsys):
    call_command("outbox_status", fail_on=_conditions("dead,oldest-pending=60s,breaker-open"))
    assert capsys.readouterr().out.strip() == "ok"


def test_fail_on_dead_exits_1_naming_the_handler():
    make_dead_letter()
    with pytest.raises(CommandError, match=r"^dead letters: probe\.breakable \(1\)$") as failed:
        call_command("outbox_status", fail_on=_conditions("dead"))
    assert failed.value.returncode == 1
    call_command("outbox_status", fail_on=_conditions("dead=1"))  # one dead letter allowed: passes


def test_fail_on_oldest_pending_and_open_breakers():
    with transaction.atomic():
        publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=10)
    Delivery.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    HandlerCircuit.objects.create(handler="probe.call_downstream", state="open")
    with pytest.raises(CommandError) as failed:
        call_command("outbox_status", fail_on=_conditions("oldest-pending=2m,breaker-open"))
    reason = str(failed.value)
    assert "oldest pending over 120s: probe.record_a (300s)" in reason
    assert "circuit not closed: probe.call_downstream (open)" in reason
    assert "\n" not in reason


@pytest.mark.parametrize("bad", ["dead,bogus", "oldest-pending=soon", "oldest-pending=²s", "dead=-1", "", "paused=1"])
def test_a_bad_fail_on_condition_exits_2_with_what_is_understood(bad):
    result = _manage("outbox_status", "--fail-on", bad)
    assert result.returncode == 2
    assert "--fail-on" in result.stderr
    assert "Traceback" not in result.stderr


def test_outbox_handler_pauses_shows_and_resumes(capsys):
    call_command("outbox_handler", "pause", "probe.call_downstream")
    call_command("outbox_handler", "status", "probe.call_downstream")
    assert "probe.call_downstream; paused; circuit closed" in capsys.readouterr().out
    assert HandlerCircuit.objects.get(handler="probe.call_downstream").paused
    call_command("outbox_handler", "resume", "probe.call_downstream")
    assert not HandlerCircuit.objects.get(handler="probe.call_downstream").paused


def test_outbox_handler_refuses_an_unknown_handler_with_exit_2_and_changes_nothing():
    result = _manage("outbox_handler", "pause", "probe.nobody")
    assert result.returncode == 2
    assert "No handler is subscribed as 'probe.nobody'" in result.stderr
    assert "probe.call_downstream" in result.stderr  # it names the ones there are
    assert not HandlerCircuit.objects.exists()
    assert _manage("outbox_handler", "stop", "probe.record_a").returncode == 2


def _conditions(text: str):
    from outbox.management.commands.outbox_status import _fail_on

    return _fail_on(text)


def _manage(*args: str) -> subprocess.CompletedProcess:
    """Run a management command as an operator would, against the test database."""
    return subprocess.run(
        [*manage_py(), *args],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
