"""GET /api/outbox/dead-letters/, POST /api/outbox/dead-letters/{id}/retry/ and .../{id}/discard/."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from outbox.models import Delivery
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db

LIST_URL = "/api/outbox/dead-letters/"


def retry_url(delivery_id: int) -> str:
    return f"/api/outbox/dead-letters/{delivery_id}/retry/"


# listing


def test_staff_see_each_dead_letter_with_its_error_traceback_and_event(staff, make_delivery):
    # given a dead delivery, and others that are not dead letters
    dead = make_delivery(status="dead")
    make_delivery(status="done")
    make_delivery(status="pending")
    make_delivery(status="dead", resolved_at=timezone.now())  # discarded
    # when
    response = token_client(staff).get(LIST_URL)
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (1, None, None)
    event = dead.event
    assert body["results"] == [
        {
            "id": dead.id,
            "handler": "probe.breakable",
            "queue": "probe",
            "attempts": 3,
            "last_error": "ValueError: the probe is broken",
            "traceback": dead.traceback,
            "event": {
                "event_id": str(event.event_id),
                "type": "probe.Broke",
                "version": 1,
                "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
                "aggregate_type": "probe.Thing",
                "aggregate_id": event.aggregate_id,
                "correlation_id": str(event.correlation_id),
                "causation_id": None,
                "payload": event.payload,
            },
            "finished_at": dead.finished_at.isoformat().replace("+00:00", "Z"),
        }
    ]


def test_the_list_filters_by_handler(staff, make_delivery):
    wanted = make_delivery(handler="probe.breakable")
    make_delivery(handler="probe.flaky")
    response = token_client(staff).get(LIST_URL, {"handler": "probe.breakable"})
    assert [row["id"] for row in response.json()["results"]] == [wanted.id]


def test_the_list_is_paginated_oldest_first(staff, make_delivery):
    # given three dead letters
    ids = [make_delivery().id for _ in range(3)]
    client = token_client(staff)
    # when
    first = client.get(LIST_URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    # then
    assert first["count"] == 3
    assert [row["id"] for row in first["results"]] == ids[:2]
    assert [row["id"] for row in second["results"]] == ids[2:]
    assert second["next"] is None
    assert second["previous"] is not None


def test_a_page_past_the_end_is_404(staff, make_delivery):
    make_delivery()
    response = token_client(staff).get(LIST_URL, {"page": 9})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page.", "code": "not_found"}


def test_a_bad_filter_is_400_naming_it(staff):
    response = token_client(staff).get(LIST_URL, {"handler": "x" * 201})
    assert response.status_code == 400
    assert response.json()["errors"] == {"handler": ["Ensure this field has no more than 200 characters."]}


def test_customers_may_not_see_the_dead_letter_queue(customer, make_delivery):
    make_delivery()
    response = token_client(customer).get(LIST_URL)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Reading dead letters needs the outbox.view_delivery permission.",
        "code": "permission_denied",
    }


def test_anonymous_clients_get_401(make_delivery):
    assert APIClient().get(LIST_URL).status_code == 401


# retrying


def test_an_operator_retries_a_dead_letter(dlq_operator, make_delivery, django_capture_on_commit_callbacks):
    # given
    dead = make_delivery(status="dead")
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = token_client(dlq_operator).post(retry_url(dead.id))
    # then it is pending again with a fresh set of attempts, and the relay is asked to run
    assert response.status_code == 202
    assert response.json() == {
        "id": dead.id,
        "handler": "probe.breakable",
        "status": "pending",
        "detail": f"Delivery {dead.id} to probe.breakable is queued for another attempt.",
    }
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.finished_at) == ("pending", 0, None)
    assert len(callbacks) == 1  # the relay kick, sent once the retry committed


def test_a_superuser_may_retry(make_delivery):
    admin = make_user("root", staff=True, is_superuser=True)
    assert token_client(admin).post(retry_url(make_delivery().id)).status_code == 202


def test_staff_without_the_retry_permission_get_403_naming_it(staff, make_delivery):
    # given
    dead = make_delivery()
    # when
    response = token_client(staff).post(retry_url(dead.id))
    # then
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Retrying dead deliveries needs the outbox.retry_delivery permission.",
        "code": "permission_denied",
    }
    dead.refresh_from_db()
    assert dead.status == "dead"


def test_a_customer_may_not_retry(customer, make_delivery):
    dead = make_delivery()
    assert token_client(customer).post(retry_url(dead.id)).status_code == 403
    dead.refresh_from_db()
    assert dead.status == "dead"


def test_retry_without_a_token_is_401(make_delivery):
    response = APIClient().post(retry_url(make_delivery().id))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("delivery_id", [999_999_999, 2**63, 10**30], ids=["unknown", "past bigint", "huge"])
def test_retrying_an_unknown_delivery_is_404(dlq_operator, delivery_id):
    response = token_client(dlq_operator).post(retry_url(delivery_id))
    assert response.status_code == 404
    assert response.json() == {"detail": f"There is no delivery {delivery_id}.", "code": "not_found"}


@pytest.mark.parametrize("status", ["done", "pending", "dispatched"])
def test_retrying_a_delivery_that_is_not_dead_is_409(dlq_operator, make_delivery, status):
    # given
    delivery = make_delivery(status=status)
    # when
    response = token_client(dlq_operator).post(retry_url(delivery.id))
    # then
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Delivery {delivery.id} is {status}, not dead: only dead deliveries can be retried.",
        "code": "conflict",
    }
    assert Delivery.objects.get(id=delivery.id).status == status


def test_retrying_a_discarded_dead_letter_is_409(dlq_operator, make_delivery):
    discarded = make_delivery(status="dead", resolved_at=timezone.now())
    response = token_client(dlq_operator).post(retry_url(discarded.id))
    assert response.status_code == 409
    assert "was discarded" in response.json()["detail"]
    assert Delivery.objects.get(id=discarded.id).status == "dead"


def test_retrying_twice_is_a_conflict_the_second_time(dlq_operator, make_delivery):
    dead = make_delivery()
    client = token_client(dlq_operator)
    assert client.post(retry_url(dead.id)).status_code == 202
    assert client.post(retry_url(dead.id)).status_code == 409


# discarding


def discard_url(delivery_id: int) -> str:
    return f"/api/outbox/dead-letters/{delivery_id}/discard/"


def test_an_operator_discards_a_dead_letter(dlq_operator, make_delivery, django_capture_on_commit_callbacks):
    # given
    dead = make_delivery(status="dead")
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = token_client(dlq_operator).post(discard_url(dead.id))
    # then it is kept, dead, marked resolved by the operator, and the relay is asked to run (it may release others)
    assert response.status_code == 200
    dead.refresh_from_db()
    assert response.json() == {
        "id": dead.id,
        "handler": "probe.breakable",
        "status": "dead",
        "resolved_at": dead.resolved_at.isoformat().replace("+00:00", "Z"),
        "resolved_by": "olga",
        "detail": f"Delivery {dead.id} to probe.breakable is discarded: kept, marked resolved.",
    }
    assert (dead.status, dead.resolved_by) == ("dead", dlq_operator)
    assert len(callbacks) == 1


def test_staff_without_the_permission_may_not_discard(staff, make_delivery):
    dead = make_delivery()
    response = token_client(staff).post(discard_url(dead.id))
    assert response.status_code == 403
    assert response.json()["detail"] == "Discarding dead deliveries needs the outbox.retry_delivery permission."
    dead.refresh_from_db()
    assert dead.resolved_at is None


@pytest.mark.parametrize("delivery_id", [999_999_999, 2**63], ids=["unknown", "past bigint"])
def test_discarding_an_unknown_delivery_is_404(dlq_operator, delivery_id):
    response = token_client(dlq_operator).post(discard_url(delivery_id))
    assert response.status_code == 404
    assert response.json() == {"detail": f"There is no delivery {delivery_id}.", "code": "not_found"}


def test_discarding_a_delivery_that_is_not_dead_is_409(dlq_operator, make_delivery):
    done = make_delivery(status="done")
    response = token_client(dlq_operator).post(discard_url(done.id))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"Delivery {done.id} is done, not dead: only dead deliveries can be discarded."
    )


def test_discarding_twice_is_a_conflict_the_second_time(dlq_operator, make_delivery):
    dead = make_delivery()
    client = token_client(dlq_operator)
    assert client.post(discard_url(dead.id)).status_code == 200
    second = client.post(discard_url(dead.id))
    assert second.status_code == 409
    assert "was discarded at" in second.json()["detail"]
    assert "it cannot be discarded" in second.json()["detail"]
