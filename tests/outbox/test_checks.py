"""The outbox's rule, soft time limit < hard time limit < lease, checked where an operator meets it."""

import subprocess
import sys

import pytest

from tests.support.processes import ROOT, process_env

pytestmark = pytest.mark.django_db

UNSAFE = {"OUTBOX_LEASE_SECONDS": "2", "CELERY_TASK_TIME_LIMIT": "5", "CELERY_TASK_SOFT_TIME_LIMIT": "4"}


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=process_env(**env), capture_output=True, text=True, timeout=90
    )


def test_manage_py_check_refuses_a_batch_that_could_outlive_its_lease():
    result = _run("manage.py", "check", **UNSAFE)
    assert result.returncode == 1
    assert "outbox.E002" in result.stderr
    assert "CELERY_TASK_TIME_LIMIT (5 s) is not below OUTBOX_LEASE_SECONDS (2 s)" in result.stderr


def test_manage_py_check_refuses_a_soft_limit_that_comes_after_the_hard_one():
    result = _run(
        "manage.py", "check", OUTBOX_LEASE_SECONDS="10", CELERY_TASK_TIME_LIMIT="5", CELERY_TASK_SOFT_TIME_LIMIT="6"
    )
    assert result.returncode == 1
    assert "outbox.E004" in result.stderr


def test_a_worker_with_such_a_configuration_does_not_start_and_says_why():
    result = _run("-m", "celery", "-A", "config", "worker", "-Q", "probe", "-c", "1", "--without-mingle", **UNSAFE)
    assert result.returncode == 2
    assert "outbox.E002" in result.stderr
    assert "ready." not in result.stdout + result.stderr


def test_the_shipped_defaults_keep_the_rule():
    result = _run("manage.py", "check", DJANGO_SETTINGS_MODULE="config.settings.base")
    assert result.returncode == 0, result.stderr
