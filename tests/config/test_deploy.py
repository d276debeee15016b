"""Safe to deploy: what the production settings refuse, checked by running the real commands and servers.

``manage.py check --deploy`` is clean for correct production settings and fails, naming the setting, for
each unsafe one; the processes that run no system checks (gunicorn, Celery) refuse the same settings; the
entry points default to production; the HTTPS redirect spares only /healthz and /readyz and trusts
``X-Forwarded-Proto`` only from a declared proxy.
"""

import http.client
import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.support.processes import ROOT, ChildProcess, wait_for
from tests.support.web import free_port

# What the deployment tests set themselves: never inherited from the environment pytest runs in.
SET_HERE = {
    "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "SANDBOX_DATABASE_URL", "CELERY_BROKER_URL",
    "CACHE_URL", "EMAIL_URL", "ALLOWED_HOSTS", "DEBUG", "ALLOW_SANDBOX_PROVIDERS", "METRICS_TOKEN",
    "PAYMENTS_GATEWAY", "SHIPPING_CARRIER", "NUM_PROXIES", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "CELERY_SKIP_CHECKS",
}  # fmt: skip
SECRET = "a-long-random-production-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
LIVE = {"PAYMENTS_GATEWAY": "tests.support.live_providers.LiveGateway",
        "SHIPPING_CARRIER": "tests.support.live_providers.LiveCarrier"}  # fmt: skip
# Correct production settings with the real providers' adapters...
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": SECRET,
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/oms",
    "METRICS_TOKEN": "scraper-token-0123456789",
    **LIVE,
}
# ... and a demo's: the sandbox providers, declared.
DEMO = {**PRODUCTION, "PAYMENTS_GATEWAY": "", "SHIPPING_CARRIER": "", "ALLOW_SANDBOX_PROVIDERS": "true"}


def _env(**env: str) -> dict[str, str]:
    """The environment without anything of SET_HERE, plus ``env``; a variable given as "" stays unset."""
    clean = {k: v for k, v in os.environ.items() if k not in SET_HERE}
    return {**clean, **{k: v for k, v in env.items() if v != ""}}


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=120
    )


# manage.py check --deploy


@pytest.mark.parametrize("settings_", [PRODUCTION, DEMO], ids=["real providers", "a declared sandbox demo"])
def test_correct_production_settings_pass_the_deployment_checklist_without_a_warning(settings_):
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **settings_)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


@pytest.mark.parametrize(
    ("change", "named", "check_id"),
    [
        ({"PAYMENTS_GATEWAY": ""}, "PAYMENTS_GATEWAY", "project.E001"),
        ({"PAYMENTS_GATEWAY": "payments.sandbox.SandboxGateway"}, "PAYMENTS_GATEWAY", "project.E001"),
        ({"SHIPPING_CARRIER": ""}, "SHIPPING_CARRIER", "project.E002"),
        ({"PAYMENTS_GATEWAY": "", "ALLOW_SANDBOX_PROVIDERS": "false"}, "PAYMENTS_GATEWAY", "project.E001"),
        ({"PAYMENTS_GATEWAY": "payments.stripe.Gateway"}, "PAYMENTS_GATEWAY", "project.E003"),
        ({"METRICS_TOKEN": ""}, "METRICS_TOKEN", "project.E004"),
    ],
    ids=[
        "the default gateway: the sandbox",
        "the sandbox gateway named",
        "the default carrier: the sandbox",
        "sandbox not allowed in so many words",
        "a gateway that does not import",
        "no metrics token",
    ],
)
def test_each_unsafe_production_setting_fails_the_checklist_naming_it(change, named, check_id):
    # when the checklist runs with one setting unsafe
    result = _run("manage.py", "check", "--deploy", **{**PRODUCTION, **change})
    # then it fails, with the check's id and the setting's name on one message
    assert result.returncode == 1, result.stdout + result.stderr
    [message] = [line for line in result.stderr.splitlines() if f"({check_id})" in line]
    assert named in message


@pytest.mark.parametrize(
    ("change", "named"),
    [({"SECURE_SSL_REDIRECT": "false"}, "SECURE_SSL_REDIRECT"), ({"SECURE_HSTS_SECONDS": "0"}, "SECURE_HSTS_SECONDS")],
)
def test_djangos_own_deployment_warnings_fail_the_checklist_at_the_warning_level(change, named):
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, **change})
    assert result.returncode == 1
    assert named in result.stderr


# The development settings serve this machine only


@pytest.mark.parametrize("hosts", ["shop.example.com", "localhost,shop.example.com", "*", "0.0.0.0", "10.0.0.5"])
def test_the_development_settings_refuse_a_host_that_is_not_loopback(hosts):
    # when manage.py (whose default they are) runs them for another host
    result = _run("manage.py", "check", ALLOWED_HOSTS=hosts)
    # then it stops, naming the setting and the way to deploy
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"ImproperlyConfigured: ALLOWED_HOSTS={hosts!r}: config.settings.local"), line
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in line


def test_the_development_settings_take_every_loopback_name_and_address(tmp_path):
    hosts = "localhost,127.0.0.1,[::1],shop.localhost,.localhost,127.0.0.2,LOCALHOST."
    result = _run("manage.py", "check", ALLOWED_HOSTS=hosts, VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr


# The entry points default to production


@pytest.mark.parametrize(
    "code",
    [
        "import config.wsgi",
        "import config.asgi",
        "from config.celery_app import app; app.conf.broker_url",  # reading the configuration loads the settings
    ],
    ids=["wsgi", "asgi", "celery"],
)
def test_an_entry_point_without_a_settings_module_runs_production_and_refuses_without_a_secret(code):
    # when a server imports it with no DJANGO_SETTINGS_MODULE (and so no secret key: not a deployment)
    result = _run("-c", code)
    # then it is the production settings that stop it, saying what is missing: never DEBUG with a fixed key
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: Set the SECRET_KEY environment variable"
    )


def test_the_wsgi_entry_point_without_a_settings_module_serves_production():
    show = "import config.wsgi; from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)"
    result = _run("-c", show, **{**PRODUCTION, "DJANGO_SETTINGS_MODULE": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["config.settings.production", "False"]


# Processes that run no system checks refuse the same settings


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def production(transactional_db) -> dict[str, str]:
    """Correct production settings on the test database (committed rows only), broker and cache, for 127.0.0.1."""
    from django.conf import settings

    return {
        **PRODUCTION,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CACHE_URL": os.environ.get("TEST_CACHE_URL", "redis://127.0.0.1:6379/10"),
        "EMAIL_URL": "consolemail://",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }


def _gunicorn(port: int) -> list[str]:
    # gunicorn itself believes X-Forwarded-Proto from loopback (its forwarded_allow_ips): this test's client is
    # on loopback, a client that reaches gunicorn without a proxy is not. It is told to believe only an
    # address nobody here has, so what is tested is what Django believes.
    return [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--forwarded-allow-ips", "192.0.2.1",
    ]  # fmt: skip


def _exits(process: ChildProcess, timeout: float = 60) -> int:
    wait_for(lambda: not process.alive(), timeout=timeout, what=process.output)
    return process.proc.returncode


@pytest.mark.parametrize(
    ("change", "named"),
    [({"PAYMENTS_GATEWAY": ""}, "PAYMENTS_GATEWAY"), ({"METRICS_TOKEN": ""}, "METRICS_TOKEN")],
    ids=["sandbox gateway", "no metrics token"],
)
def test_gunicorn_refuses_to_serve_unsafe_production_settings(production, change, named):
    # when gunicorn starts the WSGI application on them
    web = ChildProcess("unsafe-web", _gunicorn(free_port()), _env(**{**production, **change}))
    try:
        # then it stops before serving (gunicorn: "Worker failed to boot"), and its log says why
        assert _exits(web) == 3, web.output()
        assert "refusing to serve:" in web.output()
        assert named in web.output()
    finally:
        web.stop()


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "celery", "-A", "config", "worker", "-Q", "orders", "-c", "1", "--without-mingle", "--without-gossip"],
        ["-m", "celery", "-A", "config", "beat", "-s", "{tmp}/schedule"],
    ],
    ids=["worker", "beat"],
)
def test_celery_refuses_to_start_on_unsafe_production_settings(production, tmp_path, argv):
    # when a worker or beat starts with the sandbox carrier undeclared
    argv = [sys.executable, *(arg.replace("{tmp}", str(tmp_path)) for arg in argv)]
    process = ChildProcess("unsafe-celery", argv, _env(**{**production, "SHIPPING_CARRIER": ""}))
    try:
        # then it exits 2 naming the setting, and never says it is ready
        assert _exits(process) == 2, process.output()
        assert "project.E002" in process.output()
        assert "SHIPPING_CARRIER" in process.output()
        assert " ready." not in process.output()
    finally:
        process.stop()


# HTTPS: the redirect and the proxy header


def _get(port: int, path: str, **headers: str) -> http.client.HTTPResponse:
    """One plain-HTTP GET, redirects not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.fixture
def serve(production):
    """Start gunicorn on the production settings (plus ``env``); stopped after the test."""
    started: list[ChildProcess] = []

    def start(**env: str) -> int:
        port = free_port()
        web = ChildProcess("production-web", _gunicorn(port), _env(**{**production, **env}))
        started.append(web)

        def answers() -> bool:
            assert web.alive(), web.output()
            try:
                return _get(port, "/healthz").status in (200, 503)
            except OSError:
                return False

        wait_for(answers, timeout=60, interval=0.1, what=web.output)
        return port

    yield start
    for web in started:
        web.stop()


def test_without_a_declared_proxy_plain_http_is_redirected_whatever_the_client_says(serve):
    port = serve()  # NUM_PROXIES unset: 0
    # /metrics is not exempt: the scraper's token would otherwise cross the network in clear
    metrics = _get(port, "/metrics", Authorization="Bearer scraper-token-0123456789")
    assert metrics.status == 301
    assert metrics.headers["Location"] == f"https://127.0.0.1:{port}/metrics"
    # a client's own X-Forwarded-Proto is not believed
    assert _get(port, "/metrics", **{"X-Forwarded-Proto": "https"}).status == 301
    assert _get(port, "/api/orders/", **{"X-Forwarded-Proto": "https"}).status == 301
    # /healthz and /readyz are exempt, for load balancers probing over plain HTTP
    assert _get(port, "/healthz").status == 200
    assert _get(port, "/readyz").status == 200


def test_behind_a_declared_proxy_its_forwarded_proto_is_believed(serve):
    port = serve(NUM_PROXIES="1")
    # the proxy says the client came over HTTPS: served
    assert _get(port, "/metrics", **{"X-Forwarded-Proto": "https"}).status == 401  # the token is still needed
    ok = _get(port, "/metrics", **{"X-Forwarded-Proto": "https", "Authorization": "Bearer scraper-token-0123456789"})
    assert ok.status == 200
    # it says plain HTTP: redirected
    assert _get(port, "/metrics", **{"X-Forwarded-Proto": "http"}).status == 301


# In-process: the parts the real servers above cannot reach


@pytest.mark.django_db
def test_where_the_token_is_required_metrics_are_refused_even_to_loopback_without_one(client, settings):
    # given production's rule, with the token missing (the start-up check was silenced, say)
    settings.METRICS_TOKEN_REQUIRED, settings.METRICS_TOKEN = True, ""
    # when a request comes from loopback through no proxy, which is all the development settings ask
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    # then
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content


def test_a_proxy_ssl_header_without_a_declared_proxy_is_an_error_naming_both(settings):
    from config.checks import check_proxy_header_has_a_proxy

    settings.SECURE_PROXY_SSL_HEADER, settings.NUM_PROXIES = ("HTTP_X_FORWARDED_PROTO", "https"), 0
    [error] = check_proxy_header_has_a_proxy()
    assert error.id == "project.E005"
    assert "SECURE_PROXY_SSL_HEADER" in error.msg
    assert "NUM_PROXIES" in error.hint
    settings.NUM_PROXIES = 1
    assert check_proxy_header_has_a_proxy() == []
