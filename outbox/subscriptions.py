"""Who reacts to which event: each context's ``handlers.py`` ends with a list

    SUBSCRIPTIONS = [
        Subscription(OrderConfirmed, authorise_payment, max_attempts=5),
        Subscription(OrderCancelled, refund_payment),
    ]

which the outbox app collects at start-up. A handler is a function
``handler(event, envelope) -> None`` that runs inside the delivery's
transaction; its name (``payments.authorise_payment``) is stored on every
delivery, so renaming one is a migration of its deliveries.

A subscription gets the events published after it is deployed. One that wants
the past too says so with ``history_from`` (a datetime, or ``"all"``):
``manage.py outbox_replay --history`` delivers that history to it, once. A
handler that keeps a read model may name a ``rebuild`` callable that empties
it; ``outbox_replay --handler NAME --rebuild`` calls it and delivers the
whole log again (see outbox/replay.py).
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from django.core.exceptions import ImproperlyConfigured

from .conf import outbox_setting
from .events import DomainEvent, Envelope, registry
from .failures import Verdict, classify

Handler = Callable[[Any, Envelope], None]


@dataclass(frozen=True)
class Subscription:
    """One handler's subscription to one event type, with its delivery policy."""

    event: type[DomainEvent] | str
    handler: Handler
    name: str = ""  # defaults to "<app label>.<function name>"
    queue: str = ""  # defaults to the subscribing app's label
    max_attempts: int | None = None
    backoff_base: float | None = None  # seconds before the 2nd attempt; doubles each time
    backoff_cap: float | None = None
    ordered: bool = False  # hold an aggregate's event n+1 until event n is finished
    on_dead: Literal["stop", "skip"] = "stop"  # ordered only: does a dead event hold the key?
    # The exception policy: exceptions dead at once, and exceptions retried with backoff (the default for
    # any exception neither lists); the most specific match wins. See outbox/failures.py.
    permanent: tuple[type[BaseException], ...] = ()
    transient: tuple[type[BaseException], ...] = ()
    breaker_threshold: int | None = None  # consecutive failures that open the circuit; 0: no breaker
    breaker_cooldown: float | None = None  # seconds an open circuit waits before one probe delivery
    # Past events wanted when first deployed: those that occurred from this time on, or "all" of them.
    history_from: datetime | Literal["all"] | None = None
    # Empties the handler's read model, inside the transaction that starts a rebuild from the log.
    rebuild: Callable[[], None] | None = None

    @property
    def has_breaker(self) -> bool:
        return self.setting("BREAKER_THRESHOLD") > 0

    def verdict(self, exc: BaseException) -> Verdict:
        """What this handler's exception means under the subscription's policy."""
        return classify(exc, permanent=self.permanent, transient=self.transient)

    @property
    def event_type(self) -> str:
        return self.event if isinstance(self.event, str) else self.event.event_type

    def setting(self, key: str) -> Any:
        value = {
            "MAX_ATTEMPTS": self.max_attempts,
            "BACKOFF_BASE_SECONDS": self.backoff_base,
            "BACKOFF_CAP_SECONDS": self.backoff_cap,
            "BREAKER_THRESHOLD": self.breaker_threshold,
            "BREAKER_COOLDOWN_SECONDS": self.breaker_cooldown,
        }[key]
        return outbox_setting(key) if value is None else value


class SubscriptionRegistry:
    def __init__(self) -> None:
        self._by_type: dict[str, list[Subscription]] = defaultdict(list)
        self._by_name: dict[str, Subscription] = {}

    def add(self, subscription: Subscription, *, app_label: str) -> Subscription:
        subscription = _with_defaults(subscription, app_label)
        if not registry.is_registered(subscription.event_type):
            raise ImproperlyConfigured(
                f"{subscription.name} subscribes to {subscription.event_type!r}, which no event class registers."
            )
        if subscription.name in self._by_name:
            raise ImproperlyConfigured(f"Two subscriptions are named {subscription.name!r}.")
        self._by_name[subscription.name] = subscription
        self._by_type[subscription.event_type].append(subscription)
        return subscription

    def add_all(self, subscriptions: Iterable[Subscription], *, app_label: str) -> None:
        for subscription in subscriptions:
            self.add(subscription, app_label=app_label)

    def for_type(self, event_type: str) -> list[Subscription]:
        return self._by_type.get(event_type, [])

    def get(self, name: str) -> Subscription | None:
        return self._by_name.get(name)

    def all(self) -> list[Subscription]:
        return list(self._by_name.values())

    def remove(self, name: str) -> None:
        """Unsubscribe (for tests that add a handler for their own duration)."""
        subscription = self._by_name.pop(name)
        self._by_type[subscription.event_type].remove(subscription)


def _with_defaults(subscription: Subscription, app_label: str) -> Subscription:
    subscription = replace(
        subscription,
        name=subscription.name or f"{app_label}.{subscription.handler.__name__}",
        queue=subscription.queue or app_label,
        permanent=tuple(subscription.permanent),
        transient=tuple(subscription.transient),
    )
    _check_policy(subscription)
    return subscription


def _check_policy(subscription: Subscription) -> None:
    """Refuse, at start-up, a policy that names something other than exception classes, or a bad breaker."""
    for option in ("permanent", "transient"):
        for cls in getattr(subscription, option):
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise ImproperlyConfigured(
                    f"{subscription.name}: {option}= lists {cls!r}, which is not an exception class."
                )
    if subscription.breaker_threshold is not None and subscription.breaker_threshold < 0:
        raise ImproperlyConfigured(f"{subscription.name}: breaker_threshold must be 0 (no breaker) or more.")
    if subscription.breaker_cooldown is not None and not subscription.breaker_cooldown > 0:
        raise ImproperlyConfigured(f"{subscription.name}: breaker_cooldown must be a positive number of seconds.")
    _check_history(subscription)


def _check_history(subscription: Subscription) -> None:
    """Refuse, at start-up, a history that is neither "all" nor a timezone-aware datetime, or a rebuild not callable."""
    history = subscription.history_from
    aware = isinstance(history, datetime) and history.utcoffset() is not None
    if history not in (None, "all") and not aware:
        raise ImproperlyConfigured(
            f'{subscription.name}: history_from must be "all" or a timezone-aware datetime, not {history!r}.'
        )
    if subscription.rebuild is not None and not callable(subscription.rebuild):
        raise ImproperlyConfigured(f"{subscription.name}: rebuild must be a callable that empties its read model.")


subscriptions = SubscriptionRegistry()
