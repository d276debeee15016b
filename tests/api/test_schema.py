"""The OpenAPI schema: valid, complete, and what the API really answers."""

import io

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis import checks

from tests.support.users import make_user

pytestmark = pytest.mark.django_db

PHASE_ONE_ROUTES = r"^/api/(auth|outbox|events)/"


def test_the_schema_is_valid_openapi_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    assert '"openapi": "3.0.3"' in out.getvalue()


def test_the_schema_and_its_docs_page_are_public():
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")
    assert schema.status_code == 200
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def test_every_operation_documents_its_error_bodies():
    # given
    paths = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    # then every protected operation documents 401 and 403, and every error has the Error body
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {code: r for code, r in responses.items() if code >= "400"}
            assert errors, f"{method} {path} documents no error"
            for code, response in errors.items():
                schema_ref = response["content"]["application/json"]["schema"]["$ref"]
                expected = "InvalidInput" if code == "400" else "Error"
                assert schema_ref == f"#/components/schemas/{expected}", f"{method} {path} {code}"
            if operation.get("security") != [{}]:
                assert {"401", "403"} <= responses.keys(), f"{method} {path}"


def _operations() -> dict:
    return APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]


def test_placing_an_order_documents_the_idempotency_key_and_what_a_reused_key_answers():
    # given
    place = _operations()["/api/orders/"]["post"]
    # then the request header
    [key] = [p for p in place["parameters"] if p["in"] == "header" and p["name"] == "Idempotency-Key"]
    assert key.get("required", False) is False
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    # and the replay header on 201, and the 422 with the error body
    assert place["responses"]["201"]["headers"]["Idempotent-Replayed"]["schema"] == {"type": "string", "enum": ["true"]}
    reused = place["responses"]["422"]
    assert reused["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
    assert "Idempotency-Key" in reused["description"]


def test_every_operation_documents_503_with_retry_after():
    for path, operations in _operations().items():
        for method, operation in operations.items():
            unavailable = operation["responses"].get("503")
            assert unavailable is not None, f"{method} {path}"
            assert unavailable["headers"]["Retry-After"]["schema"]["type"] == "integer", f"{method} {path}"


def test_confirming_is_documented_as_safe_to_repeat():
    confirm = _operations()["/api/orders/{order_id}/confirm/"]["post"]
    assert "Confirming again is safe" in confirm["responses"]["202"]["description"]


# Loaded at collection through the WSGI app in-process; building the schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


@pytest.fixture
def operator_headers(db, make_delivery, in_process_requests) -> dict[str, str]:
    """Staff allowed to retry and to read the event log, with a dead letter to list and retry."""
    make_delivery()
    operator = make_user("schema-operator", staff=True, perms=("outbox.retry_delivery", "outbox.view_outboxevent"))
    return {"Authorization": f"Token {Token.objects.create(user=operator).key}"}


# Well-formed credentials that match no user are a 400 by contract, and so is a handler or type filter with a
# NUL character in it, and a span whose `until` is not after its `since`; the acceptance check would call them
# failures.
WELL_FORMED_MAY_BE_REFUSED = {
    ("POST", "/api/auth/token/"): [checks.positive_data_acceptance],
    ("GET", "/api/outbox/dead-letters/"): [checks.positive_data_acceptance],
    ("GET", "/api/events/"): [checks.positive_data_acceptance],
}


@schema.include(path_regex=PHASE_ONE_ROUTES).parametrize()
@settings(max_examples=50, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@pytest.mark.schemathesis
def test_the_api_answers_as_its_schema_says(case, operator_headers):
    # when a generated request is sent as staff: then no 5xx, and status, headers and body are as documented
    excluded = WELL_FORMED_MAY_BE_REFUSED.get((case.method.upper(), case.path), [])
    case.call_and_validate(headers=operator_headers, excluded_checks=excluded)


def test_searching_the_event_log_documents_its_filters_and_who_may():
    search = _operations()["/api/events/"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert names == {"type", "correlation_id", "aggregate_type", "aggregate_id", "since", "until", "page", "page_size"}
    assert {"400", "401", "403"} <= search["responses"].keys()
    assert "children" in _schema()["components"]["schemas"]["LoggedEvent"]["properties"]
    assert "children" in _schema()["components"]["schemas"]["OrderEvent"]["properties"]


def _schema() -> dict:
    return APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
