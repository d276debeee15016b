"""GET /healthz in-process: the checks and the shape of the answer (the broker really stopping: test_faults)."""

import pytest

from config import views

pytestmark = pytest.mark.django_db


def test_healthy_when_the_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failing": [], "checks": {"database": "ok", "broker": "ok"}}


def test_anyone_may_ask_without_signing_in(client):
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200


def test_a_failing_database_is_named(client, monkeypatch):
    # given a database check that fails (a real outage of the shared database is not ours to cause)
    monkeypatch.setattr(views, "_check_database", lambda: "error: connection refused")
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert response.json()["checks"]["database"] == "error: connection refused"
