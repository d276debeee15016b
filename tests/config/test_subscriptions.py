"""The contexts' subscriptions state only what differs from the defaults, and the defaults are what most use."""

from collections import Counter

from django.conf import settings

from outbox.subscriptions import subscriptions

CONTEXTS = ("orders", "payments", "inventory", "shipping", "notifications", "customers")
# Subscription option -> its default in settings.OUTBOX.
POLICY = {
    "max_attempts": "MAX_ATTEMPTS",
    "backoff_base": "BACKOFF_BASE_SECONDS",
    "backoff_cap": "BACKOFF_CAP_SECONDS",
    "breaker_threshold": "BREAKER_THRESHOLD",
    "breaker_cooldown": "BREAKER_COOLDOWN_SECONDS",
}


def _project_subscriptions():
    found = [s for s in subscriptions.all() if s.name.split(".")[0] in CONTEXTS]
    assert len(found) >= 16  # every context's handlers.py was collected
    return found


def test_no_subscription_restates_a_default():
    restated = [
        f"{s.name}: {option}={getattr(s, option)!r} is the default"
        for s in _project_subscriptions()
        for option, key in POLICY.items()
        if getattr(s, option) == settings.OUTBOX[key]
    ]
    assert restated == []


def test_each_default_is_the_policy_most_subscriptions_have():
    for option, key in POLICY.items():
        # when each subscription's policy is read as it applies (its own value, or the default)
        used = Counter(s.setting(key) for s in _project_subscriptions())
        # then the default is the most common one
        default, (most, count) = settings.OUTBOX[key], used.most_common(1)[0]
        assert used[default] == count, f"{option}: most use {most!r}, the default is {default!r}"
