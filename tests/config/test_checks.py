"""``manage.py check`` warns about a cache the processes serving requests do not share."""

import os
import subprocess
import sys

import pytest

from config.checks import check_cache_is_shared
from tests.support.processes import ROOT


def _cache(backend: str, location: str = "") -> dict:
    return {"default": {"BACKEND": f"django.core.cache.backends.{backend}", "LOCATION": location}}


@pytest.mark.parametrize("backend", ["locmem.LocMemCache", "dummy.DummyCache"])
def test_a_per_process_cache_is_warned_about(settings, backend):
    # given a cache that each process keeps to itself, or none
    settings.CACHES = _cache(backend)
    # when the checks run
    found = check_cache_is_shared()
    # then one warning says what it breaks and what to set instead
    assert [(m.id, m.level) for m in found] == [("project.W001", 30)]
    assert "API_TOKEN_RATE" in found[0].msg
    assert "CACHE_URL" in found[0].hint


@pytest.mark.parametrize(
    ("backend", "location"),
    [("redis.RedisCache", "redis://127.0.0.1:6379/1"), ("filebased.FileBasedCache", "/tmp/oms-cache")],
)
def test_a_shared_cache_is_not_warned_about(settings, backend, location):
    settings.CACHES = _cache(backend, location)
    assert check_cache_is_shared() == []


def _check_command(tmp_path, **env: str) -> str:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CACHE_URL", "TEST_", "CELERY_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**keep, "DJANGO_SETTINGS_MODULE": "config.settings.local", "VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_embedded_default_shares_its_cache_and_check_is_quiet(tmp_path):
    assert "project.W001" not in _check_command(tmp_path)


def test_check_warns_about_a_local_memory_cache_set_in_the_environment(tmp_path):
    assert "project.W001" in _check_command(tmp_path, CACHE_URL="locmemcache://")
