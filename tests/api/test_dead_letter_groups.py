"""GET /api/outbox/dead-letter-groups/ and POST .../{group_id}/retry/ and .../{group_id}/discard/."""

import pytest
from rest_framework.test import APIClient

from outbox.models import Delivery
from tests.support.deliveries import group_of, jams, make_dead_letter_of, statuses
from tests.support.users import token_client

pytestmark = pytest.mark.django_db

LIST_URL = "/api/outbox/dead-letter-groups/"


def group_url(group_id: str, action: str) -> str:
    return f"/api/outbox/dead-letter-groups/{group_id}/{action}/"


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


# listing


def test_staff_see_the_groups_largest_first_with_counts_times_and_an_example(staff):
    # given three jams and one letter of another cause
    letters = jams(3)
    make_dead_letter_of(ValueError("the probe is broken"), handler="probe.breakable")
    # when
    response = token_client(staff).get(LIST_URL)
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    latest = letters[-1]
    assert body["results"][0] == {
        "id": group_of(latest),
        "handler": "probe.jammable",
        "error_type": "RuntimeError",
        "error_pattern": "RuntimeError: gear <n> of <uuid> is jammed",
        "count": 3,
        "first_seen": iso(letters[0].finished_at),
        "last_seen": iso(latest.finished_at),
        "example": {"delivery_id": latest.id, "last_error": latest.last_error, "traceback": latest.traceback},
    }
    assert (body["results"][1]["handler"], body["results"][1]["count"]) == ("probe.breakable", 1)


def test_the_groups_filter_by_handler_and_are_paginated(staff):
    # given three causes of one handler, one of another
    for word in ("alpha", "bravo", "charlie"):
        make_dead_letter_of(ValueError(f"cause {word}"))
    make_dead_letter_of(ValueError("cause delta"), handler="probe.breakable")
    client = token_client(staff)
    # when
    first = client.get(LIST_URL, {"handler": "probe.jammable", "page_size": 2}).json()
    second = client.get(first["next"]).json()
    # then
    assert first["count"] == 3
    assert [g["error_pattern"] for g in first["results"] + second["results"]] == [
        "ValueError: cause alpha",
        "ValueError: cause bravo",
        "ValueError: cause charlie",
    ]
    assert second["next"] is None


def test_customers_may_not_see_the_groups(customer):
    response = token_client(customer).get(LIST_URL)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Reading dead letters needs the outbox.view_delivery permission.",
        "code": "permission_denied",
    }


def test_anonymous_clients_get_401():
    assert APIClient().get(LIST_URL).status_code == 401


# retrying and discarding


def test_an_operator_retries_some_of_a_group_first(dlq_operator, django_capture_on_commit_callbacks):
    # given five jams
    letters = jams(5)
    group_id = group_of(letters[0])
    # when two are retried
    with django_capture_on_commit_callbacks() as callbacks:
        response = token_client(dlq_operator).post(group_url(group_id, "retry"), {"limit": 2}, format="json")
    # then the two oldest are queued again, three remain, and the relay is asked to run
    assert response.status_code == 202
    assert response.json() == {
        "group": group_id,
        "handler": "probe.jammable",
        "retried": 2,
        "remaining": 3,
        "detail": "Retried 2 of 5 dead letters of probe.jammable (RuntimeError), queued for another attempt; 3 remain.",
    }
    assert statuses(letters) == ["pending", "pending", "dead", "dead", "dead"]
    assert len(callbacks) == 1


def test_without_a_body_the_whole_group_is_retried(dlq_operator):
    letters = jams(3)
    response = token_client(dlq_operator).post(group_url(group_of(letters[0]), "retry"))
    assert (response.status_code, response.json()["retried"], response.json()["remaining"]) == (202, 3, 0)
    assert statuses(letters) == ["pending"] * 3


def test_an_operator_discards_a_group(dlq_operator):
    # given three jams
    letters = jams(3)
    group_id = group_of(letters[0])
    # when all but one are discarded
    response = token_client(dlq_operator).post(group_url(group_id, "discard"), {"limit": 2}, format="json")
    # then they are kept, dead, marked resolved by the operator
    assert response.status_code == 200
    assert response.json() == {
        "group": group_id,
        "handler": "probe.jammable",
        "discarded": 2,
        "remaining": 1,
        "detail": "Discarded 2 of 3 dead letters of probe.jammable (RuntimeError), kept, marked resolved; 1 remain.",
    }
    assert statuses(letters) == ["dead"] * 3
    resolved = Delivery.objects.filter(resolved_by=dlq_operator).values_list("id", flat=True)
    assert sorted(resolved) == [letters[0].id, letters[1].id]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"limit": 0}, "limit", "The limit is at least 1; leave it out for all."),
        ({"limit": -5}, "limit", "The limit is at least 1; leave it out for all."),
        ({"limit": "2"}, "limit", 'Give the limit as a whole number of 1 or more, e.g. {"limit": 50}, or leave it out'),
        ({"limit": 2.0}, "limit", "Give the limit as a whole number"),
        ({"limit": 2.5}, "limit", "Give the limit as a whole number"),
        ({"limit": True}, "limit", "Give the limit as a whole number"),
        ({"limit": None}, "limit", "This field may not be null."),
        ({"limt": 2}, "limt", 'Unknown field: the body takes only "limit".'),
        ([2], "non_field_errors", "Invalid data. Expected a dictionary, but got list."),
    ],
)
@pytest.mark.parametrize("action", ["retry", "discard"])
def test_a_bad_limit_is_400_naming_it_and_changes_nothing(dlq_operator, action, body, field, message):
    # given
    letters = jams(2)
    # when
    response = token_client(dlq_operator).post(group_url(group_of(letters[0]), action), body, format="json")
    # then
    assert response.status_code == 400
    [error] = response.json()["errors"][field]
    assert error.startswith(message)
    assert statuses(letters) == ["dead", "dead"]
    assert not Delivery.objects.filter(resolved_at__isnull=False).exists()


def test_a_body_that_is_not_json_is_400(dlq_operator):
    letters = jams(1)
    response = token_client(dlq_operator).generic(
        "POST", group_url(group_of(letters[0]), "retry"), '{"limit": ', content_type="application/json"
    )
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    assert statuses(letters) == ["dead"]


@pytest.mark.parametrize("action", ["retry", "discard"])
@pytest.mark.parametrize("group_id", ["0123456789ab", "not-a-group"])
def test_an_unknown_group_is_404(dlq_operator, action, group_id):
    jams(1)
    response = token_client(dlq_operator).post(group_url(group_id, action), {"limit": 1}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"].startswith(f"There is no dead-letter group {group_id}:")


def test_a_group_retried_in_full_is_gone(dlq_operator):
    letters = jams(1)
    client = token_client(dlq_operator)
    assert client.post(group_url(group_of(letters[0]), "retry")).status_code == 202
    assert client.post(group_url(group_of(letters[0]), "retry")).status_code == 404


@pytest.mark.parametrize(
    ("action", "verb"), [("retry", "Retrying"), ("discard", "Discarding")], ids=["retry", "discard"]
)
def test_staff_without_the_permission_get_403_naming_it(staff, action, verb):
    # given
    letters = jams(2)
    # when
    response = token_client(staff).post(group_url(group_of(letters[0]), action), {"limit": 1}, format="json")
    # then
    assert response.status_code == 403
    assert response.json() == {
        "detail": f"{verb} dead deliveries needs the outbox.retry_delivery permission.",
        "code": "permission_denied",
    }
    assert statuses(letters) == ["dead", "dead"]
    assert not Delivery.objects.filter(resolved_at__isnull=False).exists()


def test_the_group_routes_are_in_the_schema():
    paths = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    listing = paths["/api/outbox/dead-letter-groups/"]["get"]
    retry = paths["/api/outbox/dead-letter-groups/{group_id}/retry/"]["post"]
    discard = paths["/api/outbox/dead-letter-groups/{group_id}/discard/"]["post"]
    assert {"200", "400", "401", "403", "404"} <= listing["responses"].keys()
    assert {"202", "400", "403", "404"} <= retry["responses"].keys()
    assert {"200", "400", "403", "404"} <= discard["responses"].keys()
    body = retry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body == "#/components/schemas/DeadLetterGroupLimitRequest"
    assert "/api/outbox/dead-letters/{delivery_id}/discard/" in paths
