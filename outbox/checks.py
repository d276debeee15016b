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
"""

import sys
from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks

RUN_TASK = "outbox.run_deliveries"


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
    lease = settings.OUTBOX["LEASE_SECONDS"]
    hard, soft = time_limits()
    found = []
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


def refuse_to_start_if_unsafe() -> None:
    """Exit with status 2, naming each problem, when the configuration breaks the rule."""
    found = problems()
    if found:
        for problem in found:
            print(f"{problem.id}: {problem.msg}\n    HINT: {problem.hint}", file=sys.stderr)
        raise SystemExit(2)
