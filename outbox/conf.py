"""The outbox's settings: the ``OUTBOX`` dict of the project's settings, over these defaults.

A project sets only the keys it changes; :func:`outbox_setting` reads a key,
the project's value if it set one, else the default (``manage.py check``
warns about a key that is not one of these, outbox/checks.py). A settings
module that reads the knobs from ``OUTBOX_<KEY>`` environment variables writes

    OUTBOX = from_environment(BACKOFF_BASE_SECONDS=2.0)  # the project's own defaults, if any

This module reads no setting when it is imported, so a settings module may
import it.
"""

import difflib
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Events fanned out, and due deliveries dispatched, per relay transaction.
    "RELAY_BATCH_SIZE": 500,
    # At most this many deliveries of one handler travel in one Celery task.
    # Measured (bench/outbox_bench.py backlog, 2 worker processes): 20 -> 1,660
    # deliveries/s, 50 -> 2,050, 100 -> 2,420. Batches only form under load;
    # at light load every task carries one delivery.
    "TASK_BATCH_SIZE": 100,
    # A dispatched delivery not done after this is dispatched again: if no handler
    # started it (a lost message, workers down), without spending an attempt and
    # after a lease twice as long each time, up to LEASE_CAP_SECONDS; if one
    # started, its worker was lost, and that attempt is recorded as failed.
    # Celery's time limits must stay below it (soft < hard < lease: outbox/checks.py).
    "LEASE_SECONDS": 60.0,
    "LEASE_CAP_SECONDS": 900.0,
    # Default retry policy; a subscription may override each (outbox/subscriptions.py).
    "MAX_ATTEMPTS": 8,
    "BACKOFF_BASE_SECONDS": 0.5,  # before the 2nd attempt; doubles each time
    "BACKOFF_CAP_SECONDS": 600.0,
    # Circuit breaker, per subscription (0: none): this many consecutive failures
    # of a handler, across deliveries, open it; its deliveries then wait for the
    # cool-down spending no attempts, and one probe delivery tests the way.
    "BREAKER_THRESHOLD": 0,
    "BREAKER_COOLDOWN_SECONDS": 30.0,
    # publish creates the event's deliveries in its own transaction and sends
    # their tasks as it commits, so no relay hop lies between a commit and its
    # handlers (the relay remains the safety net, and releases ordered and
    # held-back deliveries). Off: the relay fans every event out.
    "DISPATCH_ON_COMMIT": True,
    # After a commit that left work for the relay, enqueue a (coalesced) relay run.
    "KICK_ON_COMMIT": True,
    # How often the dedicated relay process (manage.py outbox_relay) polls when
    # no NOTIFY arrives, and sweeps for retries and expired leases.
    "RELAY_POLL_SECONDS": 1.0,
    # Under load (a pass found several events) the relay process waits this long
    # before its next pass, so that deliveries travel in fuller batches.
    "RELAY_COALESCE_SECONDS": 0.05,
    # Retention (outbox/retention.py; the outbox.prune task, which beat runs). Events are never pruned.
    # Done deliveries and inbox rows go this long after they finished:
    "RETENTION_DONE_DAYS": 30.0,
    # ...but never an inbox row younger than the longest retry window of any subscription plus this: how far
    # back a replay may re-deliver events to a handler that had them (it skips those it finds in its inbox).
    "REPLAY_HORIZON_DAYS": 30.0,
    # Dead letters an operator resolved (discarded) go this long after that; unresolved ones stay.
    "RETENTION_RESOLVED_DAYS": 90.0,
    # Rows deleted per statement and transaction: the longest batch of 5,000 took 22-102 ms here over
    # 100,000 rows of each kind, under the 250 ms bound the test asserts (docs/operations.md, Retention).
    "RETENTION_BATCH_SIZE": 5000,
}

ENVIRONMENT_PREFIX = "OUTBOX_"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_EMPTY: Mapping[str, Any] = {}


def outbox_setting(key: str) -> Any:
    """``settings.OUTBOX[key]`` if the project set it, else its default (a KeyError for a key neither has).

    Read on every call (two dict lookups), so ``override_settings`` and a test's
    ``settings.OUTBOX = ...`` apply at once.
    """
    project = getattr(settings, "OUTBOX", _EMPTY)
    return project[key] if key in project else DEFAULTS[key]


def unknown_keys(project: Mapping[str, Any]) -> dict[str, list[str]]:
    """The keys of ``project`` that are no setting of the outbox, each with the known keys closest to it."""
    return {key: close_keys(key) for key in project if key not in DEFAULTS}


def close_keys(key: str) -> list[str]:
    """The settings whose names are closest to ``key`` (a misspelling, or the right name in lower case)."""
    return difflib.get_close_matches(str(key).upper(), DEFAULTS, n=3, cutoff=0.7)


def from_environment(environ: Mapping[str, str] | None = None, **project_defaults: Any) -> dict[str, Any]:
    """An ``OUTBOX`` dict of every key: ``OUTBOX_<KEY>`` from ``environ`` (default ``os.environ``) if set,
    else the project's default given here, else the outbox's.

    A variable is parsed by the type of the outbox's default: a whole number, a
    number, or a boolean (true/false, 1/0, yes/no, on/off, in any case). A value
    that does not parse raises ImproperlyConfigured naming the variable.
    """
    unknown = unknown_keys(project_defaults)
    if unknown:
        raise ImproperlyConfigured(
            "from_environment() got defaults for no setting of the outbox: "
            + "; ".join(f"{key} (did you mean {' or '.join(near) or 'none of them'}?)" for key, near in unknown.items())
        )
    environ = os.environ if environ is None else environ
    outbox = {}
    for key, default in DEFAULTS.items():
        variable = ENVIRONMENT_PREFIX + key
        raw = environ.get(variable)
        outbox[key] = project_defaults.get(key, default) if raw is None else _parse(variable, raw, type(default))
    return outbox


def _parse(variable: str, raw: str, kind: type) -> Any:
    value = raw.strip().lower()
    if kind is bool:
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        must = "true or false (or 1/0, yes/no, on/off)"
    else:
        try:
            return kind(value)
        except ValueError:
            must = "a whole number" if kind is int else "a number"
    raise ImproperlyConfigured(f"{variable} is {raw!r}: it must be {must}.")
