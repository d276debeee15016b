"""The settings a deployment relies on, checked the way an operator would: by running manage.py."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


# The deployment checklist (manage.py check --deploy), safe and unsafe: test_deploy.py.


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = _manage(
        "check", DJANGO_SETTINGS_MODULE="config.settings.production", DATABASE_URL="postgres://postgres@127.0.0.1/oms"
    )
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("DATABASE_URL", "nonsense://x", "unknown scheme 'nonsense'"),
        ("DATABASE_URL", "postgres://host:notaport/db", "its host or port does not parse"),
        ("DATABASE_URL", "postgres://oms:secret@host:5432", "it names no database"),
        ("SANDBOX_DATABASE_URL", "postgresql", "it is not a URL"),
        ("CELERY_BROKER_URL", "rabbit://guest@host//", "unknown scheme 'rabbit'"),
        ("CELERY_BROKER_URL", "redis://host:99999/0", "its host or port does not parse"),
        ("CACHE_URL", "bogus", "it is not a URL"),
        ("CACHE_URL", "redis://host:6379x/1", "its host or port does not parse"),
        ("EMAIL_URL", "smtp://:x@", "it names no mail server"),
        ("EMAIL_URL", "smpt://host:25", "unknown scheme 'smpt'"),
        ("SHOP_BASE_URL", "ftp://shop.example.com", "unknown scheme 'ftp'"),
    ],
)
def test_a_malformed_service_url_stops_start_up_with_one_line_naming_it(variable, value, problem):
    # when the project starts with one URL wrong
    result = _manage("check", DJANGO_SETTINGS_MODULE="config.settings.test", **{variable: value})
    # then it stops, and says which variable, what is wrong with it, and what a good one looks like
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert line.startswith(f"ImproperlyConfigured: {variable}='"), line
    assert f": {problem}" in line
    assert "give a URL like " in line
    assert "secret" not in line  # a password is never shown


def test_production_refuses_to_start_without_a_database_url_in_one_line():
    result = _manage("check", DJANGO_SETTINGS_MODULE="config.settings.production", SECRET_KEY="s" * 50)
    assert result.returncode != 0
    assert result.stderr.splitlines() == ["ImproperlyConfigured: Set the DATABASE_URL environment variable"]


@pytest.mark.parametrize(
    ("given", "links_to"),
    [({}, "https://shop.test"), ({"SHOP_BASE_URL": "https://www.shop.test/eu/"}, "https://www.shop.test/eu")],
    ids=["first-allowed-host", "set"],
)
def test_production_mail_links_to_the_shop_not_to_loopback(given, links_to):
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SHOP_BASE_URL)",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="s" * 50,
        DATABASE_URL="postgres://postgres@127.0.0.1/oms",
        ALLOWED_HOSTS="shop.test,www.shop.test",
        **given,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == links_to


def test_the_embedded_default_is_sqlite_in_wal_mode_and_a_serverless_broker():
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; from django.db import connection; "
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); "
        "print(connection.vendor, c.fetchone()[0], settings.CELERY_BROKER_URL)",
        DJANGO_SETTINGS_MODULE="config.settings.local",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["sqlite", "wal", "filesystem://"]


def test_the_suite_stops_loudly_when_postgresql_is_down():
    # given a port nothing listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # when pytest starts against it
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/outbox/test_events.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ, "TEST_DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/oms"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then it fails, says why, and says how to start PostgreSQL
    assert result.returncode == 3
    assert f"PostgreSQL at 127.0.0.1:{port} is not reachable" in result.stdout + result.stderr
    assert "pg_ctlcluster" in result.stdout + result.stderr


def test_every_model_change_has_its_migration():
    result = _manage("makemigrations", "--check", "--dry-run", DJANGO_SETTINGS_MODULE="config.settings.test")
    assert result.returncode == 0, result.stdout + result.stderr
