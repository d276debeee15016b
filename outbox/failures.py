"""What a handler's failure means: the exception policy, and the cause a dead letter is grouped by.

A handler says what kind of failure it met by what it raises:

* ``Permanent(reason)``: retrying cannot help (bad data, a rule the event
  breaks): the delivery is dead at once, with no retries.
* ``RetryLater(seconds)``: the handler knows when to try again (a rate limit's
  ``Retry-After``, a resource not ready yet). The delivery is due then; the
  attempt is not counted towards the dead letter unless ``counted=True``.
* Anything else is classified by its subscription's ``permanent=`` and
  ``transient=`` exception classes (the most specific match wins); an
  exception neither lists is transient: retried with backoff, then dead.

This module imports nothing of Django's models, so that ``outbox`` can
re-export the two exceptions for handlers to raise.
"""

import enum
import re
from collections.abc import Iterable


class Permanent(Exception):
    """Raised by a handler: this event can never be handled; dead-letter it now, without retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(Exception):
    """Raised by a handler: try this delivery again in ``seconds``.

    Not counted as a failed attempt (the delivery never dies of it) unless
    ``counted`` says so.
    """

    def __init__(self, seconds: float, reason: str = "", *, counted: bool = False) -> None:
        if not seconds >= 0:
            raise ValueError(f"RetryLater needs a delay of zero seconds or more, not {seconds!r}")
        super().__init__(reason or f"the handler asked to be retried in {seconds:g} s")
        self.seconds, self.reason, self.counted = float(seconds), reason, counted


class ConcurrencyError(Exception):
    """An append expected its stream at one version and another writer had moved it on (optimistic concurrency).

    Nothing of the append is stored; the transaction it ran in must roll back
    (raising out of ``transaction.atomic()`` does): reload the aggregate and
    try again. A handler that lets it escape is retried like any transient failure.
    """

    def __init__(self, aggregate_type: str, aggregate_id: str, expected: int, detail: str = "") -> None:
        message = f"Stream {aggregate_type}:{aggregate_id} moved past version {expected} before this append"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.aggregate_type, self.aggregate_id, self.expected = aggregate_type, aggregate_id, expected


class Verdict(enum.Enum):
    PERMANENT = "permanent"  # dead now
    TRANSIENT = "transient"  # retried with backoff, dead after max_attempts
    DEFERRED = "deferred"  # RetryLater: due at the time the handler named


def classify(
    exc: BaseException, *, permanent: Iterable[type[BaseException]] = (), transient: Iterable[type[BaseException]] = ()
) -> Verdict:
    """The policy's verdict on a handler's exception: the most specific listed class wins."""
    if isinstance(exc, Permanent):
        return Verdict.PERMANENT
    if isinstance(exc, RetryLater):
        return Verdict.DEFERRED
    mro = type(exc).__mro__
    ranked = [(mro.index(cls), verdict) for classes, verdict in ((permanent, Verdict.PERMANENT),
              (transient, Verdict.TRANSIENT)) for cls in classes if isinstance(exc, cls)]  # fmt: skip
    return min(ranked, key=lambda pair: pair[0])[1] if ranked else Verdict.TRANSIENT


def error_type(exc: BaseException) -> str:
    """The exception's class as dead letters are grouped by it: ``module.Qualname`` (builtins bare)."""
    return class_name(type(exc))


def class_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# Pseudo exception types of failures no handler raised.
WORKER_LOST = "outbox.WorkerLost"
NOT_SUBSCRIBED = "outbox.HandlerNotSubscribed"
UNKNOWN_TYPE = "outbox.UnknownEventType"
UNDECODABLE = "outbox.events.EventDecodeError"
TIME_LIMIT = "celery.exceptions.SoftTimeLimitExceeded"
UNKNOWN_TYPE_PATTERN = "Unknown event type <str>: no class is registered for it, so no handler gets it."


# The errors of the failures no handler raised, as the relay and the runner record them alike.


def unknown_type_error(event_type: str) -> str:
    return f"Unknown event type {event_type!r}: no class is registered for it, so no handler gets it."


def not_subscribed_error(handler: str) -> str:
    return f"No handler named {handler!r} is subscribed in this deployment."


def worker_lost_error(attempt: int, max_attempts: int, *, last: bool = False, shared: bool = False) -> str:
    """The error recorded for an attempt whose worker vanished before it finished.

    ``last`` and ``shared``: it was the last allowed, in a batch with others,
    so it is not charged to this delivery (its siblings may be the cause); it
    has that attempt again, alone.
    """
    if last and shared:
        return (
            f"The worker was lost during attempt {attempt} of {max_attempts}, the last allowed, while this delivery "
            "shared its batch with others: the loss may be another's doing, so that attempt is not charged to it "
            "and it runs it again, in a task of its own."
        )
    if last:
        return (
            f"The worker was lost during attempt {attempt} of {max_attempts}, the last allowed: the handler may be "
            "killing its process (SIGKILL, os._exit, out of memory) or outrunning the task's hard time limit."
        )
    return (
        f"The worker running attempt {attempt} of {max_attempts} was lost before it finished (killed, out of "
        "memory, or the hard time limit); the delivery is retried in a task of its own."
    )


_VARIABLE_PARTS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]*\d[0-9a-f]*\b", re.I), "<n>"),
]
PATTERN_LENGTH = 200
# What a failed attempt's record keeps of its error: the first lines, capped.
FIRST_LINES, FIRST_LINES_LENGTH = 5, 2_000


def error_pattern(message: str) -> str:
    """The message with what varies from one delivery to the next (ids, numbers, quoted values) masked.

    ``"Order 8f1c…: 3 units of 'SKU-9' short"`` and ``"Order 02ab…: 12 units
    of 'SKU-4' short"`` share the pattern ``"Order <uuid>: <n> units of <str>
    short"``, so their dead letters are one group.
    """
    line = next((part.strip() for part in message.splitlines() if part.strip()), "")
    for regex, placeholder in _VARIABLE_PARTS:
        line = regex.sub(placeholder, line)
    return line[:PATTERN_LENGTH]


def first_lines(message: str) -> str:
    """The start of an error message, as each failed attempt keeps it (the last attempt's keeps it all)."""
    return "\n".join(message.splitlines()[:FIRST_LINES])[:FIRST_LINES_LENGTH]
