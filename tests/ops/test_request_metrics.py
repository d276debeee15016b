"""Request, database and cache metrics (config/metrics.py): in this process, and summed over gunicorn's workers."""

import sys
import urllib.error
import urllib.request
import uuid

import pytest
from django.core.cache import cache, caches
from django.db import DatabaseError, connection, transaction
from prometheus_client import REGISTRY

from tests.ops.test_metrics import samples
from tests.support.processes import ChildProcess, process_env
from tests.support.web import WebServer, free_port, wait_until_answering

pytestmark = pytest.mark.django_db


def value(name: str, **labels: str) -> float:
    """A sample recorded by this process (the registry reads this process's own figures)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_request_is_counted_and_timed_by_the_name_of_its_view(client):
    # given
    labels = {"view": "healthz", "method": "GET"}
    before = (value("django_http_requests_total", **labels, status="200"), value(_count("request"), **labels))
    # when
    assert client.get("/healthz").status_code == 200
    # then
    after = (value("django_http_requests_total", **labels, status="200"), value(_count("request"), **labels))
    assert after == (before[0] + 1, before[1] + 1)


def test_a_path_with_an_id_is_one_series_of_its_view_and_an_unknown_path_one_of_none(client):
    # given two orders' pages, asked without signing in, and a path no URL matches
    view = {"view": "orders-api:order-detail", "method": "GET", "status": "401"}
    nothing = {"view": "<none>", "method": "GET", "status": "404"}
    before = value("django_http_requests_total", **view), value("django_http_requests_total", **nothing)
    # when
    for _ in range(2):
        assert client.get(f"/api/orders/{uuid.uuid4()}/").status_code == 401
    assert client.get(f"/no-such-page/{uuid.uuid4()}").status_code == 404
    # then
    after = value("django_http_requests_total", **view), value("django_http_requests_total", **nothing)
    assert after == (before[0] + 2, before[1] + 1)


def test_an_unusual_method_is_counted_as_other(client):
    before = value("django_http_requests_total", view="healthz", method="other", status="405")
    assert client.generic("BREW", "/healthz").status_code == 405
    assert value("django_http_requests_total", view="healthz", method="other", status="405") == before + 1


def test_every_statement_is_timed_and_one_that_fails_counted_by_its_error_class():
    # given
    before = (
        value(_count("query"), alias="default"),
        value("django_db_query_errors_total", alias="default", error="ProgrammingError"),
    )
    # when one statement succeeds and one fails
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        with pytest.raises(DatabaseError), transaction.atomic():
            cursor.execute("SELECT * FROM no_such_table_for_metrics")
    # then both were timed (and the savepoint's statements), and the failure counted once
    after = (
        value(_count("query"), alias="default"),
        value("django_db_query_errors_total", alias="default", error="ProgrammingError"),
    )
    assert after[0] >= before[0] + 2
    assert after[1] == before[1] + 1


def test_cache_reads_count_their_hits_and_misses_per_key():
    # given
    key = f"metrics-test-{uuid.uuid4()}"
    cache.set(key, "there")
    before = {result: value("django_cache_reads_total", cache="default", result=result) for result in ("hit", "miss")}
    # when
    assert cache.get(key) == "there"
    assert cache.get(f"{key}-absent", "default") == "default"
    assert cache.get_many([key, f"{key}-absent"]) == {key: "there"}
    assert cache.get_or_set(f"{key}-new", "made") == "made"
    # then each key read counts: get_or_set reads the key again after adding it (Django's), a hit
    after = {result: value("django_cache_reads_total", cache="default", result=result) for result in ("hit", "miss")}
    assert after == {"hit": before["hit"] + 3, "miss": before["miss"] + 3}
    # and the cache is still the class CACHES names
    assert type(caches["default"]).__name__ == "RedisCache"


def test_a_cache_that_does_not_answer_counts_an_error(settings):
    # given a cache on a port nothing listens on
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    before = value("django_cache_reads_total", cache="default", result="error")
    # when
    with pytest.raises(Exception, match=r"(?i)connect"):
        cache.get("anything")
    # then
    assert value("django_cache_reads_total", cache="default", result="error") == before + 1


def _count(of: str) -> str:
    return {"request": "django_http_request_duration_seconds_count", "query": "django_db_query_duration_seconds_count"}[
        of
    ]


# Through a real gunicorn with two workers, which share a metrics folder of their own


@pytest.fixture
def web(tmp_path):
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gthread", "--workers", "2", "--threads", "4", "--timeout", "60",
    ]  # fmt: skip
    env = process_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    server = wait_until_answering(WebServer(ChildProcess("web", argv, env), port))
    yield server
    server.stop()


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
def test_requests_queries_and_cache_reads_of_every_gunicorn_worker_reach_metrics(web):
    # given what the web's /metrics says before
    before = samples(web.get("/metrics").body.decode())
    # when it answers requests, some of each of its workers (a new connection each)
    for _ in range(6):
        assert web.get("/healthz").status == 200
    assert web.get(f"/api/orders/{uuid.uuid4()}/").status == 401
    # and a sign-in fails (its throttles read the cache)
    assert _post(f"{web.url}/api/auth/token/", b'{"username": "nobody", "password": "wrong"}') == 400
    # then /metrics counts them all, by view
    after = samples(web.get("/metrics").body.decode())

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("django_http_requests_total", view="healthz", method="GET", status="200") == 6
    assert grew("django_http_requests_total", view="orders-api:order-detail", method="GET", status="401") == 1
    assert grew("django_http_requests_total", view="api-token", method="POST", status="400") == 1
    assert grew("django_http_request_duration_seconds_count", view="healthz", method="GET") == 6
    # each /healthz ran its SELECT 1, at least
    assert grew("django_db_query_duration_seconds_count", alias="default") >= 6
    assert (
        grew("django_cache_reads_total", cache="default", result="hit")
        + grew("django_cache_reads_total", cache="default", result="miss")
        >= 1
    )
    # and no series is labelled by a path
    assert not [key for key in after if any("/" in label for _, label in key[1])]
