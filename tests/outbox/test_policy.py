"""The exception policy, in-process: what a handler's exception makes of its delivery."""

import uuid
from datetime import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models.functions import Now

from outbox import Permanent, RetryLater
from outbox.failures import Verdict, classify, error_pattern, error_type
from outbox.models import Delivery
from outbox.publishing import publish
from outbox.relay import fan_out
from outbox.runner import run_deliveries
from outbox.subscriptions import Subscription, subscriptions
from tests.outbox.probe.events import Judged, Pinged
from tests.outbox.probe.models import Effect


def _judged(raises: str) -> Delivery:
    with transaction.atomic():
        row = publish(Judged(thing_id=uuid.uuid4(), raises=raises))
    fan_out(batch_size=100)
    delivery = Delivery.objects.get(event=row, handler="probe.judge")
    run_deliveries([delivery.id])
    delivery.refresh_from_db()
    return delivery


@pytest.mark.django_db
@pytest.mark.parametrize("raises", ["permanent", "IndexError"])
def test_a_permanent_failure_is_dead_at_once_after_one_attempt(raises):
    # given outbox.Permanent, or an IndexError, which the subscription's permanent=(LookupError,) covers
    # when
    delivery = _judged(raises)
    # then
    assert (delivery.status, delivery.attempts) == ("dead", 1)
    assert delivery.last_error.startswith("Permanent failure (not retried): ")
    assert "Traceback" in delivery.traceback
    [failure] = delivery.failures.all()
    assert (failure.attempt, failure.cause, failure.counted) == (1, "permanent", True)
    assert failure.error.startswith("Permanent failure (not retried): ")


@pytest.mark.django_db
@pytest.mark.parametrize("raises", ["KeyError", "ValueError"])
def test_a_transient_failure_is_retried_with_backoff(raises):
    # given a KeyError (listed transient, more specific than the permanent LookupError) or an unlisted ValueError
    delivery = _judged(raises)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.error_type == raises
    assert list(delivery.failures.values_list("attempt", "cause", "error_type")) == [(1, "handler_error", raises)]


@pytest.mark.django_db
def test_retry_later_is_due_when_the_handler_said_and_spends_no_attempt():
    delivery = _judged("later")
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert "Retry later in 0.5 s, as the handler asked: the judge is busy (not counted" in delivery.last_error
    assert Delivery.objects.filter(id=delivery.id, due_at__gt=Now()).exists()
    assert not Effect.objects.exists()
    assert not delivery.failures.exists()  # not a failed attempt: nothing on record


@pytest.mark.django_db
def test_a_counted_retry_later_on_the_last_attempt_is_dead():
    # given a delivery on its last attempt (probe.judge allows 3)
    with transaction.atomic():
        row = publish(Judged(thing_id=uuid.uuid4(), raises="later-counted"))
    fan_out(batch_size=100)
    delivery = Delivery.objects.get(event=row, handler="probe.judge")
    Delivery.objects.filter(id=delivery.id).update(attempts=2)
    # when
    run_deliveries([delivery.id])
    # then
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("dead", 3)
    assert "(counted as a failed attempt)" in delivery.last_error
    assert list(delivery.failures.values_list("attempt", "cause", "counted")) == [(3, "retry_later", True)]


def test_the_most_specific_listed_class_decides():
    policy = {"permanent": (LookupError,), "transient": (KeyError,)}
    assert classify(KeyError("k"), **policy) is Verdict.TRANSIENT
    assert classify(IndexError("i"), **policy) is Verdict.PERMANENT
    assert classify(ValueError("v"), **policy) is Verdict.TRANSIENT  # unknown: transient
    assert classify(Permanent("p"), transient=(Exception,)) is Verdict.PERMANENT  # the handler's word wins
    assert classify(RetryLater(1), permanent=(Exception,)) is Verdict.DEFERRED


def test_retry_later_refuses_a_negative_or_missing_delay():
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="zero seconds or more"):
            RetryLater(bad)


def test_messages_that_differ_only_in_ids_and_numbers_share_a_pattern():
    a = error_pattern(f"Order {uuid.uuid4()}: 3 units of 'SKU-9' short\nmore detail")
    b = error_pattern(f"Order {uuid.uuid4()}: 12 units of 'SKU-4' short")
    assert a == b == "Order <uuid>: <n> units of <str> short"
    assert error_pattern("connection refused") != error_pattern("timed out")
    assert error_type(KeyError()) == "KeyError"
    assert error_type(Permanent("x")) == "outbox.failures.Permanent"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"permanent": ("ValueError",)}, "is not an exception class"),
        ({"transient": (int,)}, "is not an exception class"),
        ({"breaker_threshold": -1}, "breaker_threshold must be 0"),
        ({"breaker_cooldown": 0}, "breaker_cooldown must be a positive"),
        ({"history_from": "yesterday"}, 'history_from must be "all" or a timezone-aware datetime'),
        ({"history_from": datetime(2026, 12, 1)}, 'history_from must be "all" or a timezone-aware datetime'),
        ({"rebuild": "truncate"}, "rebuild must be a callable"),
    ],
)
def test_a_bad_policy_refuses_to_start(options, message):
    def handler(event, envelope):
        pass

    with pytest.raises(ImproperlyConfigured, match=message):
        subscriptions.add(Subscription(Pinged, handler, name="probe.bad_policy", **options), app_label="probe")
    assert subscriptions.get("probe.bad_policy") is None
