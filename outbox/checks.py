"""Start-up checks: the outbox's one rule on leases and time limits.

**A batch must end before its lease does:** soft time limit < hard time limit
< ``OUTBOX_LEASE_SECONDS``. A runner renews its deliveries' lease when it
starts them, stops starting deliveries once nine tenths of the soft time
limit have passed (what finished commits, the rest is handed back unspent),
and the hard limit kills a batch that still runs. So a lease that runs out on
a started delivery always means its worker is gone, and the relay may record
the attempt as lost and send the delivery again. Prefetch and batch size only
decide how long a task waits in a worker before it starts; a lease that runs
out on a waiting task sends it again without spending an attempt (the waiting
copy is dropped unread when its turn comes), so they are tuned for
throughput, not safety: see docs/operations.md.

The rule is a Django system check (``manage.py check``, every management
command, the relay process) and is enforced when a Celery worker starts.

**Retention** (outbox/retention.py) is checked too: its ages are numbers of
days a date can still be counted back by, its batch a size that stays short,
and beat runs ``outbox.prune`` at a positive interval (a
warning if it does not run it at all: finished work would pile up forever).

A key of ``settings.OUTBOX`` that is no setting (outbox/conf.py has them all,
with their defaults) is warned about, with the settings closest to it: a
misspelt key would leave its setting at the default unnoticed.
"""

import math
import sys
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks

from .conf import outbox_setting, unknown_keys

RUN_TASK = "outbox.run_deliveries"
PRUNE_TASK = "outbox.prune"
RETENTION_DAYS = ("RETENTION_DONE_DAYS", "REPLAY_HORIZON_DAYS", "RETENTION_RESOLVED_DAYS")
MAX_DAYS = 36_500  # a century: older than any row, and still a date when counted back from now
# A batch holds its rows' locks until it commits: 20,000 rows took some 80 ms here, so more than this
# would approach the bound of docs/operations.md (Retention) and gain nothing.
MAX_BATCH_SIZE = 50_000


def time_limits(task: Any = None) -> tuple[float | None, float | None]:
    """The hard and soft time limits the worker applies to the handler task."""
    task = task or current_app.tasks.get(RUN_TASK)
    conf = current_app.conf
    hard = getattr(task, "time_limit", None) or conf.task_time_limit
    soft = getattr(task, "soft_time_limit", None) or conf.task_soft_time_limit
    return hard, soft


def soft_time_limit(task: Any, *, request: Any = None) -> float | None:
    """The soft time limit of this run of ``task``: the message's own, else the task's or the app's."""
    limits = getattr(request, "timelimit", None) or (None, None)
    return limits[1] or time_limits(task)[1]


def problems() -> list[checks.CheckMessage]:
    lease = outbox_setting("LEASE_SECONDS")
    hard, soft = time_limits()
    found: list[checks.CheckMessage] = []
    if not hard:
        found.append(
            checks.Error(
                "The handler task has no hard time limit, so a batch could run on past its lease.",
                hint=f"Set CELERY_TASK_TIME_LIMIT below OUTBOX_LEASE_SECONDS ({lease:g} s).",
                id="outbox.E001",
            )
        )
    elif hard >= lease:
        found.append(
            checks.Error(
                f"CELERY_TASK_TIME_LIMIT ({hard:g} s) is not below OUTBOX_LEASE_SECONDS ({lease:g} s): a batch "
                "could outlive its lease, and the relay would take its running deliveries for lost.",
                hint="Lower the time limit or raise the lease; the rule is soft limit < hard limit < lease.",
                id="outbox.E002",
            )
        )
    if not soft:
        found.append(
            checks.Error(
                "The handler task has no soft time limit, so a long batch cannot stop at a delivery boundary.",
                hint="Set CELERY_TASK_SOFT_TIME_LIMIT below CELERY_TASK_TIME_LIMIT.",
                id="outbox.E003",
            )
        )
    elif hard and soft >= hard:
        found.append(
            checks.Error(
                f"CELERY_TASK_SOFT_TIME_LIMIT ({soft:g} s) is not below CELERY_TASK_TIME_LIMIT ({hard:g} s): the "
                "hard limit would kill batches before they stop at a delivery boundary.",
                hint="The rule is soft limit < hard limit < lease.",
                id="outbox.E004",
            )
        )
    return found


@checks.register("outbox")
def check_time_limits(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return problems()


def retention_problems() -> list[checks.CheckMessage]:
    """What is wrong with the retention settings (the prune task refuses to run while anything is)."""
    found = [_bad_days(key) for key in RETENTION_DAYS if not _is_days(outbox_setting(key))]
    batch = outbox_setting("RETENTION_BATCH_SIZE")
    if not (isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch <= MAX_BATCH_SIZE):
        found.append(
            checks.Error(
                f"OUTBOX['RETENTION_BATCH_SIZE'] is {batch!r}: it must be a whole number of rows from 1 to "
                f"{MAX_BATCH_SIZE}.",
                hint="Set OUTBOX_RETENTION_BATCH_SIZE; a batch holds its rows' locks until it commits, and the "
                "default (5000) is measured to stay short (docs/operations.md, Retention).",
                id="outbox.E011",
            )
        )
    return found


def _is_days(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_DAYS


def _bad_days(key: str) -> checks.CheckMessage:
    return checks.Error(
        f"OUTBOX[{key!r}] is {outbox_setting(key)!r}: it must be a number of days from 0 to {MAX_DAYS}.",
        hint=f"Set OUTBOX_{key} to a number of days, e.g. 30 (see docs/operations.md, Retention).",
        id="outbox.E010",
    )


def _prune_schedule_problems() -> list[checks.CheckMessage]:
    """Beat's entry for ``outbox.prune``: missing (a warning), or an interval that is not a positive time."""
    entries = current_app.conf.beat_schedule or {}
    names = [name for name, entry in entries.items() if entry.get("task") == PRUNE_TASK]
    if not names:
        return [
            checks.Warning(
                f"No beat entry runs {PRUNE_TASK}: done deliveries, inbox rows and resolved dead letters are "
                "never pruned, and their tables grow without end.",
                hint=f"Add {{'task': '{PRUNE_TASK}', 'schedule': 60.0}} to CELERY_BEAT_SCHEDULE, or run "
                "manage.py outbox_prune from cron.",
                id="outbox.W010",
            )
        ]
    every = _seconds(entries[names[0]].get("schedule"))
    if every is None or 0 < every < math.inf:
        return []  # a crontab, or a positive interval
    return [
        checks.Error(
            f"Beat's {names[0]!r} entry runs {PRUNE_TASK} every {every:g} s: it must be a positive number of seconds.",
            hint="Set OUTBOX_PRUNE_EVERY_SECONDS to a number of seconds above 0 (default 60).",
            id="outbox.E012",
        )
    ]


def _seconds(every: Any) -> float | None:
    """A beat entry's interval in seconds (a number, a timedelta or a ``schedule``); None for a crontab."""
    every = getattr(every, "run_every", every)
    if isinstance(every, timedelta):
        every = every.total_seconds()
    return every if isinstance(every, int | float) and not isinstance(every, bool) else None


@checks.register("outbox")
def check_retention(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return retention_problems() + _prune_schedule_problems()


def unknown_setting_problems() -> list[checks.CheckMessage]:
    """A warning for each key of ``settings.OUTBOX`` that is no setting of the outbox (a typo, most likely)."""
    found: list[checks.CheckMessage] = []
    for key, near in unknown_keys(getattr(settings, "OUTBOX", {})).items():
        meant = f" (did you mean {' or '.join(repr(k) for k in near)}?)" if near else ""
        found.append(
            checks.Warning(
                f"OUTBOX[{key!r}] is no setting of the outbox, and is ignored{meant}.",
                hint="The outbox's settings, with their defaults, are those of outbox/conf.py.",
                id="outbox.W011",
            )
        )
    return found


@checks.register("outbox")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return unknown_setting_problems()


def refuse_to_start_if_unsafe() -> None:
    """Exit with status 2, naming each problem, when the configuration breaks the rule."""
    found = problems()
    if found:
        for problem in found:
            print(f"{problem.id}: {problem.msg}\n    HINT: {problem.hint}", file=sys.stderr)
        raise SystemExit(2)
