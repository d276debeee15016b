"""The outbox's rule (soft time limit < hard time limit < lease) and its retention settings, where operators look."""

import subprocess
import sys
from datetime import timedelta

import pytest
from celery.schedules import crontab, schedule
from django.core import checks

from outbox.checks import check_retention, check_settings, retention_problems
from outbox.conf import DEFAULTS, outbox_setting
from tests.support.processes import ROOT, celery_app, manage_py, process_env

pytestmark = pytest.mark.django_db

UNSAFE = {"OUTBOX_LEASE_SECONDS": "2", "CELERY_TASK_TIME_LIMIT": "5", "CELERY_TASK_SOFT_TIME_LIMIT": "4"}


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess:
    """``manage.py <argv>`` (or ``python <argv>`` for ``-m ...``) of the project the suite runs in."""
    start = [sys.executable] if argv[0] == "-m" else manage_py()
    return subprocess.run([*start, *argv], cwd=ROOT, env=process_env(**env), capture_output=True, text=True, timeout=90)


def test_manage_py_check_refuses_a_batch_that_could_outlive_its_lease():
    result = _run("check", **UNSAFE)
    assert result.returncode == 1
    assert "outbox.E002" in result.stderr
    assert "CELERY_TASK_TIME_LIMIT (5 s) is not below OUTBOX_LEASE_SECONDS (2 s)" in result.stderr


def test_manage_py_check_refuses_a_soft_limit_that_comes_after_the_hard_one():
    result = _run("check", OUTBOX_LEASE_SECONDS="10", CELERY_TASK_TIME_LIMIT="5", CELERY_TASK_SOFT_TIME_LIMIT="6")
    assert result.returncode == 1
    assert "outbox.E004" in result.stderr


def test_a_worker_with_such_a_configuration_does_not_start_and_says_why():
    result = _run("-m", "celery", "-A", celery_app(), "worker", "-Q", "probe", "-c", "1", "--without-mingle", **UNSAFE)
    assert result.returncode == 2
    assert "outbox.E002" in result.stderr
    assert "ready." not in result.stdout + result.stderr


# Retention: its settings, and beat's entry for outbox.prune.


@pytest.mark.parametrize("key", ["RETENTION_DONE_DAYS", "REPLAY_HORIZON_DAYS", "RETENTION_RESOLVED_DAYS"])
@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), 36_501, "30", None, True])
def test_a_retention_age_that_is_not_a_number_of_days_is_an_error_naming_it(settings, key, value):
    # given
    settings.OUTBOX = {**settings.OUTBOX, key: value}
    # when
    found = retention_problems()
    # then
    assert [(m.id, m.msg) for m in found] == [
        ("outbox.E010", f"OUTBOX[{key!r}] is {value!r}: it must be a number of days from 0 to 36500.")
    ]
    assert f"OUTBOX_{key}" in found[0].hint


def test_a_retention_setting_left_out_takes_its_default(settings):
    # given a project that leaves the replay horizon out, and sets the other retention ages badly
    settings.OUTBOX = {
        **{k: v for k, v in settings.OUTBOX.items() if k != "REPLAY_HORIZON_DAYS"},
        "RETENTION_DONE_DAYS": -1,
    }
    # then the one left out is checked at its default (30 days), which passes
    assert outbox_setting("REPLAY_HORIZON_DAYS") == DEFAULTS["REPLAY_HORIZON_DAYS"] == 30.0
    assert [m.msg for m in retention_problems()] == [
        "OUTBOX['RETENTION_DONE_DAYS'] is -1: it must be a number of days from 0 to 36500."
    ]


def test_a_project_that_sets_no_retention_setting_passes(settings):
    settings.OUTBOX = {}
    assert retention_problems() == []


@pytest.mark.parametrize("size", [0, -5, 50_001, 2.5, "5000", True])
def test_a_batch_size_outside_1_to_50000_is_an_error(settings, size):
    settings.OUTBOX = {**settings.OUTBOX, "RETENTION_BATCH_SIZE": size}
    found = retention_problems()
    assert [m.id for m in found] == ["outbox.E011"]
    assert found[0].msg.startswith(f"OUTBOX['RETENTION_BATCH_SIZE'] is {size!r}: it must be a whole number of rows")


def test_the_shipped_retention_settings_and_schedule_pass():
    assert check_retention() == []


@pytest.mark.parametrize("every", [0, -60, schedule(0), timedelta(seconds=-1)])
def test_beat_pruning_at_an_interval_that_is_not_positive_is_an_error(settings, every):
    settings.CELERY_BEAT_SCHEDULE = {"outbox-prune": {"task": "outbox.prune", "schedule": every}}
    assert [m.id for m in check_retention()] == ["outbox.E012"]


def test_beat_pruning_on_a_crontab_is_fine(settings):
    settings.CELERY_BEAT_SCHEDULE = {"nightly": {"task": "outbox.prune", "schedule": crontab()}}
    assert check_retention() == []


def test_a_beat_schedule_without_the_prune_is_warned_about(settings):
    # given a schedule that runs the relay only (Celery reads it from the Django settings)
    settings.CELERY_BEAT_SCHEDULE = {"sweep": {"task": "outbox.relay", "schedule": 1.0}}
    # when
    found = check_retention()
    # then a warning says what grows, and how to prune
    assert [(m.id, m.level) for m in found] == [("outbox.W010", checks.WARNING)]
    assert "grow without end" in found[0].msg
    assert "outbox_prune" in found[0].hint


# Settings: a key of OUTBOX that is none of the outbox's.


def test_a_misspelt_setting_is_warned_about_with_the_ones_it_is_closest_to(settings):
    # given a project whose OUTBOX misspells a key (its setting silently stays at the default)
    settings.OUTBOX = {**settings.OUTBOX, "LEASE_SECOND": 10.0, "max_attempts": 3, "NOTHING_LIKE_IT": 1}
    # when
    found = check_settings()
    # then each unknown key is named, with the known ones closest to it
    assert [(m.id, m.level, m.msg) for m in found] == [
        (
            "outbox.W011",
            checks.WARNING,
            "OUTBOX['LEASE_SECOND'] is no setting of the outbox, and is ignored "
            "(did you mean 'LEASE_SECONDS' or 'LEASE_CAP_SECONDS'?).",
        ),
        (
            "outbox.W011",
            checks.WARNING,
            "OUTBOX['max_attempts'] is no setting of the outbox, and is ignored (did you mean 'MAX_ATTEMPTS'?).",
        ),
        ("outbox.W011", checks.WARNING, "OUTBOX['NOTHING_LIKE_IT'] is no setting of the outbox, and is ignored."),
    ]
    assert "outbox/conf.py" in found[0].hint


def test_the_shipped_settings_and_none_at_all_have_no_unknown_key(settings):
    assert check_settings() == []
    del settings.OUTBOX
    assert check_settings() == []


def test_manage_py_check_names_bad_retention_settings_from_the_environment():
    result = _run(
        "check", OUTBOX_RETENTION_RESOLVED_DAYS="-3", OUTBOX_RETENTION_BATCH_SIZE="0",
        OUTBOX_PRUNE_EVERY_SECONDS="0",
    )  # fmt: skip
    assert result.returncode == 1
    assert "outbox.E010" in result.stderr
    assert "OUTBOX['RETENTION_RESOLVED_DAYS'] is -3.0" in result.stderr
    assert "outbox.E011" in result.stderr
    assert "outbox.E012" in result.stderr
