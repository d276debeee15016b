"""Dead letters grouped by cause: the grouping, finding a group by its id, retrying or discarding one in batches."""

import datetime as dt
import threading
import time
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox import dispatch, selectors, services
from outbox.models import Delivery
from tests.outbox.probe.handlers import BeltMissing
from tests.support.deliveries import make_dead_letter_of as dead
from tests.support.deliveries import statuses

pytestmark = pytest.mark.django_db


def jam(number: int = 1, **fields) -> Delivery:
    return dead(RuntimeError(f"gear {number} of {uuid.uuid4()} is jammed"), **fields)


def the_group_of(letter: Delivery) -> selectors.DeadLetterGroup:
    group_id = selectors.dead_letter_group_id(letter.handler, letter.error_type, letter.error_pattern)
    group = selectors.dead_letter_group(group_id=group_id)
    assert group is not None
    return group


# grouping


def test_letters_whose_errors_differ_only_in_ids_numbers_and_quoted_values_are_one_group():
    # given three letters of one handler, failing the same way on different things
    for number in (3, 12, 40):
        jam(number)
    # when
    [group] = selectors.dead_letter_groups()
    # then
    assert (group.handler, group.error_type, group.count) == ("probe.jammable", "RuntimeError", 3)
    assert group.error_pattern == "RuntimeError: gear <n> of <uuid> is jammed"


def test_another_exception_type_or_another_handler_is_another_group():
    # given the same message raised as two exception types, and by two handlers
    dead(RuntimeError("belt 'B-1' is missing"))
    dead(BeltMissing("belt 'B-2' is missing"))
    dead(RuntimeError("belt 'B-3' is missing"), handler="probe.breakable")
    # when
    groups = list(selectors.dead_letter_groups())
    # then
    assert {(g.handler, g.error_type, g.error_pattern) for g in groups} == {
        ("probe.jammable", "RuntimeError", "RuntimeError: belt <str> is missing"),
        ("probe.jammable", "tests.outbox.probe.handlers.BeltMissing", "BeltMissing: belt <str> is missing"),
        ("probe.breakable", "RuntimeError", "RuntimeError: belt <str> is missing"),
    }
    assert len({g.id for g in groups}) == 3


def test_groups_come_largest_first_with_first_and_last_seen_and_their_latest_letter_as_example():
    # given two jams that died an hour apart, and three letters of another cause
    now = timezone.now()
    first = jam(1, finished_at=now - dt.timedelta(hours=1))
    latest = jam(2, finished_at=now)
    for _ in range(3):
        dead(ValueError("the probe is broken"))
    # when
    groups = list(selectors.dead_letter_groups())
    # then
    assert [(g.error_type, g.count) for g in groups] == [("ValueError", 3), ("RuntimeError", 2)]
    jams = groups[1]
    assert (jams.first_seen, jams.last_seen) == (first.finished_at, latest.finished_at)
    assert (jams.example_id, jams.example_error) == (latest.id, latest.last_error)
    assert jams.example_traceback == latest.traceback


def test_only_dead_letters_not_yet_retried_or_discarded_are_grouped():
    # given one dead letter, one discarded, and deliveries of the same cause that are not dead
    letter = jam()
    jam(resolved_at=timezone.now())
    for status in ("pending", "dispatched", "done"):
        jam(status=status)
    # when
    [group] = selectors.dead_letter_groups()
    # then
    assert (group.count, group.example_id) == (1, letter.id)


def test_groups_filter_by_handler():
    jam()
    dead(ValueError("the probe is broken"), handler="probe.breakable")
    assert [g.handler for g in selectors.dead_letter_groups(handler="probe.breakable")] == ["probe.breakable"]


def test_a_group_is_found_by_its_id_which_names_the_same_cause_wherever_it_is_computed():
    # given
    letter = jam()
    [listed] = selectors.dead_letter_groups()
    # then the id is a function of handler, type and pattern alone
    assert listed.id == selectors.dead_letter_group_id("probe.jammable", "RuntimeError", letter.error_pattern)
    assert len(listed.id) == 12
    # and the group is found by it; anything else finds none
    assert selectors.dead_letter_group(group_id=listed.id) == listed
    for unknown in ("0" * 12, listed.id.upper(), listed.id[:-1], "", "../../etc"):
        assert selectors.dead_letter_group(group_id=unknown) is None


def test_a_page_of_groups_costs_two_queries_and_their_count_one():
    # given five causes
    for word in ("alpha", "bravo", "charlie", "delta", "echo"):
        dead(ValueError(f"cause {word}"))
    groups = selectors.dead_letter_groups()
    # when / then: counted in one query, a page read in two (the groups, then their examples)
    with CaptureQueriesContext(connection) as counting:
        assert groups.count() == 5
    with CaptureQueriesContext(connection) as paging:
        page = groups[1:3]
    assert (len(counting), len(paging), len(page)) == (1, 2, 2)


# retry and discard


def test_retrying_a_group_with_a_limit_retries_its_oldest_and_leaves_the_rest_dead():
    # given five jams, which crashed a worker once, and a letter of another cause
    jams = [jam(number, attempts=1, crashes=1) for number in range(5)]
    other = dead(ValueError("the probe is broken"))
    group = the_group_of(jams[0])
    # when two are retried
    retried = services.dead_letter_group_retry(group=group, limit=2)
    # then the two oldest are pending on a fresh set of attempts, three stay dead, the other cause is untouched
    assert retried == 2
    assert statuses(jams) == ["pending", "pending", "dead", "dead", "dead"]
    fresh = Delivery.objects.filter(id__in=[jams[0].id, jams[1].id])
    assert {(d.attempts, d.crashes, d.started_at, d.finished_at) for d in fresh} == {(0, 0, None, None)}
    assert statuses([other]) == ["dead"]
    assert selectors.dead_letter_group(group_id=group.id).count == 3


def test_a_limit_past_the_size_of_the_group_retries_all_of_it():
    jams = [jam(number) for number in range(3)]
    group = the_group_of(jams[0])
    assert services.dead_letter_group_retry(group=group, limit=1000) == 3
    assert statuses(jams) == ["pending"] * 3
    assert selectors.dead_letter_group(group_id=group.id) is None  # a group is its dead letters


def test_a_group_is_retried_in_batches_each_locking_its_ids_then_updating_them_by_id():
    # given five jams
    jams = [jam(number) for number in range(5)]
    group = the_group_of(jams[0])
    # when the whole group is retried two at a time
    with CaptureQueriesContext(connection) as queries:
        retried = services.dead_letter_group_retry(group=group, batch_size=2)
    # then three batches did it, the last of one, and a fourth found nothing left
    assert retried == 5
    assert statuses(jams) == ["pending"] * 5
    claims = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and q["sql"].endswith("SKIP LOCKED")]
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert [sql.split(" LIMIT ")[1].split()[0] for sql in claims] == ["2", "2", "2", "2"]
    assert len(updates) == 3
    assert all('WHERE "outbox_delivery"."id" IN' in sql for sql in updates)


def test_a_limit_is_met_exactly_across_batches():
    jams = [jam(number) for number in range(5)]
    assert services.dead_letter_group_retry(group=the_group_of(jams[0]), limit=3, batch_size=2) == 3
    assert statuses(jams) == ["pending", "pending", "pending", "dead", "dead"]


def test_discarding_a_group_with_a_limit_keeps_its_oldest_letters_marked_resolved_by_whom(dlq_operator):
    # given three jams
    jams = [jam(number) for number in range(3)]
    group = the_group_of(jams[0])
    # when two are discarded
    discarded = services.dead_letter_group_discard(group=group, limit=2, user=dlq_operator)
    # then they are kept, dead, resolved by the operator; the third is still in the group
    assert discarded == 2
    kept = Delivery.objects.filter(id__in=[jams[0].id, jams[1].id])
    assert {(d.status, d.resolved_by_id) for d in kept} == {("dead", dlq_operator.id)}
    assert all(d.resolved_at for d in kept)
    assert selectors.dead_letter_group(group_id=group.id).count == 1


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_on_its_own_and_kicks_the_relay(monkeypatch):
    # given five jams, and the relay's kick recorded instead of sent
    kicks = []
    monkeypatch.setattr(dispatch, "kick_relay", lambda: kicks.append(Delivery.objects.filter(status="pending").count()))
    jams = [jam(number) for number in range(5)]
    # when they are retried two at a time
    services.dead_letter_group_retry(group=the_group_of(jams[0]), batch_size=2)
    # then each batch's commit kicked the relay, with that batch already visible to it
    assert kicks == [2, 4, 5]


@pytest.mark.django_db(transaction=True)
def test_letters_another_transaction_holds_are_skipped_not_waited_for():
    # given three jams, the oldest locked by another transaction
    jams = [jam(number) for number in range(3)]
    group = the_group_of(jams[0])
    locked, release = threading.Event(), threading.Event()

    def hold_the_oldest() -> None:
        try:
            with transaction.atomic():
                Delivery.objects.select_for_update().get(id=jams[0].id)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_oldest)
    holder.start()
    assert locked.wait(10)
    try:
        # when the group is retried
        started = time.monotonic()
        retried = services.dead_letter_group_retry(group=group)
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    # then the other two are retried at once, and the held one is left for later
    assert (retried, statuses(jams)) == (2, ["dead", "pending", "pending"])
    assert took < 2
    assert services.dead_letter_group_retry(group=group) == 1
