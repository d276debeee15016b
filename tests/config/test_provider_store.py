"""Where the sandbox providers keep their state: a store of their own, wherever the project runs."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from django.db import connections

from tests.support.processes import ROOT

PROVIDER_TABLES = {"payments_sandboxcharge", "payments_sandboxcall", "shipping_sandboxbooking"}

SHOW_STORE = """
import json
from django.conf import settings
from django.db import connections, router
from payments.models import Payment, SandboxCharge
store, default = settings.DATABASES["sandbox"], settings.DATABASES["default"]
print(json.dumps({
    "engine": store["ENGINE"], "name": str(store["NAME"]), "same_name": store["NAME"] == default["NAME"],
    "own_connection": connections["sandbox"] is not connections["default"],
    "charges_in": router.db_for_write(SandboxCharge), "payments_in": router.db_for_write(Payment),
    "migrated_with_default": router.allow_migrate_model("default", SandboxCharge),
}))
"""


def _manage(*args: str, **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SECRET_KEY", "DATABASE_URL", "SANDBOX_", "TEST_", "CELERY_", "CACHE_URL"))
    }
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _store(**env: str) -> dict:
    return json.loads(_manage("shell", "-c", SHOW_STORE, **env).splitlines()[-1])


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_embedded_default_keeps_the_providers_in_a_sqlite_file_of_their_own(tmp_path):
    # given nothing configured but a folder
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.local", "VAR_DIR": str(tmp_path)}
    # when it is migrated as `make run` does
    _manage("migrate", "--noinput", **env)
    _manage("migrate", "--database", "sandbox", "--noinput", **env)
    # then the providers' tables are in sandbox.sqlite3, and only there
    store = _store(**env)
    assert (store["engine"], store["name"]) == ("django.db.backends.sqlite3", str(tmp_path / "sandbox.sqlite3"))
    assert (store["charges_in"], store["payments_in"], store["migrated_with_default"]) == ("sandbox", "default", False)
    assert _tables(tmp_path / "sandbox.sqlite3") - {"django_migrations", "sqlite_sequence"} == PROVIDER_TABLES
    assert not PROVIDER_TABLES & _tables(tmp_path / "db.sqlite3")
    assert "payments_payment" in _tables(tmp_path / "db.sqlite3")


def test_on_postgresql_the_providers_use_the_same_database_through_a_connection_of_their_own():
    store = _store(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="a-long-random-production-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/oms",
    )
    assert (store["engine"], store["same_name"], store["own_connection"]) == (
        "django.db.backends.postgresql",
        True,
        True,
    )
    assert (store["charges_in"], store["migrated_with_default"]) == ("sandbox", True)


def test_sandbox_database_url_puts_the_providers_elsewhere(tmp_path):
    store = _store(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="a-long-random-production-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/oms",
        SANDBOX_DATABASE_URL="postgres://postgres@127.0.0.1:5432/oms_sandbox",
    )
    assert (store["name"], store["same_name"], store["migrated_with_default"]) == ("oms_sandbox", False, False)


@pytest.mark.django_db(databases=["default", "sandbox"])
def test_under_test_the_store_is_the_test_database_through_another_connection():
    default, store = connections["default"], connections["sandbox"]
    assert store.settings_dict["NAME"] == default.settings_dict["NAME"]
    with default.cursor() as ours, store.cursor() as theirs:
        ours.execute("SELECT pg_backend_pid()")
        theirs.execute("SELECT pg_backend_pid()")
        assert ours.fetchone() != theirs.fetchone()
    assert set(store.introspection.table_names()) >= PROVIDER_TABLES
