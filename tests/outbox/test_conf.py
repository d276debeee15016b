"""The outbox's settings: defaults for what a project leaves out, and the OUTBOX_* variables read by type."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from outbox.conf import DEFAULTS, from_environment, outbox_setting
from outbox.retention import retry_window
from outbox.subscriptions import Subscription
from tests.outbox.probe.events import Pinged
from tests.support.processes import ROOT


def _handler(event, envelope) -> None:
    pass


# outbox_setting: the project's value, else the default.


def test_a_project_that_sets_no_outbox_gets_every_default(settings):
    del settings.OUTBOX
    assert {key: outbox_setting(key) for key in DEFAULTS} == DEFAULTS


def test_a_project_that_sets_some_keys_gets_those_and_the_defaults_of_the_rest(settings):
    settings.OUTBOX = {"LEASE_SECONDS": 5.0, "KICK_ON_COMMIT": False}
    assert (outbox_setting("LEASE_SECONDS"), outbox_setting("KICK_ON_COMMIT")) == (5.0, False)
    assert (outbox_setting("MAX_ATTEMPTS"), outbox_setting("RETENTION_BATCH_SIZE")) == (8, 5000)


def test_a_changed_setting_is_seen_at_once(settings):
    # given a value read once (nothing may keep it)
    settings.OUTBOX = {"TASK_BATCH_SIZE": 7}
    assert outbox_setting("TASK_BATCH_SIZE") == 7
    # when a test overrides it, and then assigns another
    with override_settings(OUTBOX={"TASK_BATCH_SIZE": 3}):
        assert outbox_setting("TASK_BATCH_SIZE") == 3
    assert outbox_setting("TASK_BATCH_SIZE") == 7
    settings.OUTBOX = {}
    # then each read sees the settings of its moment
    assert outbox_setting("TASK_BATCH_SIZE") == DEFAULTS["TASK_BATCH_SIZE"]


def test_the_outbox_computes_with_the_defaults_when_the_project_sets_nothing(settings):
    # given a project without OUTBOX
    del settings.OUTBOX
    # when the retention works out a subscription's retry window: 8 leases of 60 s, and the backoffs
    # 0.5 s doubling, uncapped below 600 s (0.5 x (2^7 - 1))
    window = retry_window(Subscription(Pinged, _handler))
    # then
    assert window.total_seconds() == 8 * 60 + 0.5 * 127


def test_a_subscriptions_own_option_rules_over_the_setting_and_its_default(settings):
    own = Subscription(Pinged, _handler, max_attempts=3, backoff_base=0.1, breaker_threshold=0)
    plain = Subscription(Pinged, _handler)
    settings.OUTBOX = {"MAX_ATTEMPTS": 5, "BREAKER_THRESHOLD": 4}
    assert [own.setting("MAX_ATTEMPTS"), own.setting("BACKOFF_BASE_SECONDS"), own.setting("BREAKER_THRESHOLD")] == [
        3, 0.1, 0,
    ]  # fmt: skip
    assert [plain.setting("MAX_ATTEMPTS"), plain.setting("BACKOFF_BASE_SECONDS"), plain.has_breaker] == [5, 0.5, True]


# from_environment: OUTBOX_<KEY> variables, parsed by the type of the key's default.


def test_with_no_variable_set_every_key_has_its_default():
    outbox = from_environment({})
    assert outbox == DEFAULTS
    outbox["LEASE_SECONDS"] = 1.0
    assert DEFAULTS["LEASE_SECONDS"] == 60.0  # a dict of the project's own


def test_variables_are_parsed_by_the_type_of_their_default():
    outbox = from_environment(
        {
            "OUTBOX_TASK_BATCH_SIZE": "20",
            "OUTBOX_LEASE_SECONDS": " 7.5 ",
            "OUTBOX_LEASE_CAP_SECONDS": "120",
            "OUTBOX_KICK_ON_COMMIT": "Off",
            "OUTBOX_DISPATCH_ON_COMMIT": "false",
            "UNRELATED": "x",
        }
    )
    read = {key: outbox[key] for key in ("TASK_BATCH_SIZE", "LEASE_SECONDS", "LEASE_CAP_SECONDS", "KICK_ON_COMMIT")}
    assert read == {"TASK_BATCH_SIZE": 20, "LEASE_SECONDS": 7.5, "LEASE_CAP_SECONDS": 120.0, "KICK_ON_COMMIT": False}
    assert [type(outbox[key]) for key in read] == [int, float, float, bool]
    assert outbox["DISPATCH_ON_COMMIT"] is False
    assert outbox["MAX_ATTEMPTS"] == DEFAULTS["MAX_ATTEMPTS"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True)],
        *[("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False)],
    ],
)
def test_a_boolean_variable_takes_the_usual_spellings_in_any_case(raw, value):
    assert from_environment({"OUTBOX_KICK_ON_COMMIT": raw})["KICK_ON_COMMIT"] is value


@pytest.mark.parametrize(
    ("variable", "raw", "must"),
    [
        ("OUTBOX_TASK_BATCH_SIZE", "2.5", "a whole number"),
        ("OUTBOX_RETENTION_BATCH_SIZE", "5k", "a whole number"),
        ("OUTBOX_MAX_ATTEMPTS", "", "a whole number"),
        ("OUTBOX_LEASE_SECONDS", "sixty", "a number"),
        ("OUTBOX_RETENTION_DONE_DAYS", "30d", "a number"),
        ("OUTBOX_KICK_ON_COMMIT", "maybe", "true or false (or 1/0, yes/no, on/off)"),
        ("OUTBOX_DISPATCH_ON_COMMIT", "", "true or false (or 1/0, yes/no, on/off)"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_the_value_and_what_it_must_be(variable, raw, must):
    with pytest.raises(ImproperlyConfigured) as refused:
        from_environment({variable: raw, "OUTBOX_LEASE_CAP_SECONDS": "900"})
    assert str(refused.value) == f"{variable} is {raw!r}: it must be {must}."


def test_the_projects_defaults_rule_over_the_outboxs_and_the_environment_over_both():
    assert from_environment({}, BACKOFF_BASE_SECONDS=2.0, MAX_ATTEMPTS=3)["BACKOFF_BASE_SECONDS"] == 2.0
    outbox = from_environment({"OUTBOX_BACKOFF_BASE_SECONDS": "1"}, BACKOFF_BASE_SECONDS=2.0, MAX_ATTEMPTS=3)
    assert (outbox["BACKOFF_BASE_SECONDS"], outbox["MAX_ATTEMPTS"]) == (1.0, 3)


def test_a_project_default_for_no_setting_is_refused_with_the_closest_ones():
    with pytest.raises(ImproperlyConfigured, match=r"LEASE_SECOND \(did you mean LEASE_SECONDS or "):
        from_environment({}, LEASE_SECOND=10.0)


def test_it_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("OUTBOX_RELAY_BATCH_SIZE", "42")
    assert from_environment()["RELAY_BATCH_SIZE"] == 42


def test_a_settings_module_may_import_it_before_django_is_configured():
    # a fresh interpreter with no settings module: importing and calling it must read no setting
    code = (
        "from django.conf import settings; from outbox.conf import from_environment; "
        "print(from_environment()['RELAY_BATCH_SIZE'], settings.configured)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"} | {"OUTBOX_RELAY_BATCH_SIZE": "13"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "13 False"), result.stderr
