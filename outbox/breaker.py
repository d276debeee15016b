"""Circuit breakers per handler, and the operator's pause switch.

A handler whose subscription sets ``breaker_threshold`` has a circuit
(:class:`~outbox.models.HandlerCircuit`, created on its first failure):

* **closed**: deliveries flow. Each transient failure counts; a success
  resets the count. ``breaker_threshold`` consecutive failures, across
  deliveries, open it.
* **open**: the downstream is taken to be down. The relay dispatches none of
  the handler's pending deliveries (new ones are created pending), and a
  runner given one parks it unstarted; a failure of one already running is
  not counted as an attempt. So an outage of any length spends no attempts.
* **half-open**: once ``breaker_cooldown`` seconds have passed, the relay
  lets one probe delivery through. Its success closes the circuit and the
  relay sends what waited; its failure (not counted either) opens it again
  for another cool-down.

Staff may also **pause** a handler (admin action, ``outbox_handler pause``):
nothing is dispatched to it until it is resumed, whatever its circuit says.
Resuming also closes the circuit.

Outcomes are recorded after the batch that ran them committed, in a short
transaction of their own, so a circuit row is never locked while handlers
run. Decisions are taken on the database's clock.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeGuard

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from . import metrics
from .clock import db_now_plus
from .dispatch import kick_relay_on_commit
from .models import Delivery, HandlerCircuit
from .subscriptions import Subscription, subscriptions

logger = logging.getLogger(__name__)
State = HandlerCircuit.State
BLOCKED = Q(paused=True) | ~Q(state=State.CLOSED)


def blocked_circuits() -> list[HandlerCircuit]:
    """Circuits that hold their handler's deliveries back: paused, open or half-open (a small table)."""
    return list(HandlerCircuit.objects.filter(BLOCKED).only("handler", "state", "paused", "probe_delivery_id"))


def circuit_of(handler: str) -> HandlerCircuit | None:
    return HandlerCircuit.objects.filter(handler=handler).first()


def outage_known(circuit: HandlerCircuit | None) -> TypeGuard[HandlerCircuit]:
    """A failure now belongs to an outage the breaker already knows of: it is not charged as an attempt."""
    return circuit is not None and circuit.state != State.CLOSED


@dataclass
class _Tally:
    succeeded: bool = False
    failures: int = 0  # since the last success in the batch (all of them if none succeeded)
    error: str = ""


@dataclass
class Outcomes:
    """What one batch's deliveries did, per handler with a breaker, in the order they ran."""

    tallies: dict[str, _Tally] = field(default_factory=dict)

    def add(self, subscription: Subscription | None, *, ok: bool, error: str = "") -> None:
        if subscription is None or not subscription.has_breaker:
            return
        tally = self.tallies.setdefault(subscription.name, _Tally())
        if ok:
            tally.succeeded, tally.failures = True, 0
        else:
            tally.failures, tally.error = tally.failures + 1, error

    def clear(self) -> None:
        self.tallies.clear()


def record(outcomes: Outcomes) -> None:
    """After a batch committed: a success closes the handler's circuit, failures count towards opening it."""
    for handler, tally in outcomes.tallies.items():
        subscription = subscriptions.get(handler)
        if subscription is None:
            continue
        if tally.succeeded:
            _close(handler)
        if tally.failures:
            _count_failures(subscription, tally.failures, tally.error)


def _close(handler: str) -> None:
    with transaction.atomic():
        closed = (
            HandlerCircuit.objects.filter(handler=handler)
            .filter(~Q(state=State.CLOSED) | Q(consecutive_failures__gt=0))
            .update(state=State.CLOSED, consecutive_failures=0, retry_at=None, probe_delivery_id=None)
        )
        if closed:
            _kick()  # what waited behind the circuit goes now
    if closed:
        logger.info("outbox: %s succeeded; its circuit is closed", handler)


def _count_failures(subscription: Subscription, failures: int, error: str) -> None:
    threshold = subscription.setting("BREAKER_THRESHOLD")
    with transaction.atomic():
        circuit = _locked(subscription.name)
        circuit.consecutive_failures += failures
        circuit.last_error = error[:2000]
        opens = circuit.state == State.HALF_OPEN or (
            circuit.state == State.CLOSED and circuit.consecutive_failures >= threshold
        )
        if opens:
            _open(circuit, subscription)
        circuit.save()
    if opens:
        logger.warning(
            "outbox: circuit of %s is open after %d consecutive failures: its deliveries wait %gs (last: %s)",
            subscription.name,
            circuit.consecutive_failures,
            subscription.setting("BREAKER_COOLDOWN_SECONDS"),
            error,
        )


def _locked(handler: str) -> HandlerCircuit:
    HandlerCircuit.objects.bulk_create([HandlerCircuit(handler=handler)], ignore_conflicts=True)
    return HandlerCircuit.objects.select_for_update().get(handler=handler)


def _open(circuit: HandlerCircuit, subscription: Subscription) -> None:
    if circuit.state == State.CLOSED:
        circuit.opened_at, circuit.times_opened = timezone.now(), circuit.times_opened + 1
    circuit.state, circuit.probe_delivery_id = State.OPEN, None
    circuit.retry_at = db_now_plus(subscription.setting("BREAKER_COOLDOWN_SECONDS"))
    transaction.on_commit(lambda: metrics.record_circuit_opened(circuit.handler))


# The probe -----------------------------------------------------------------------------------------------------


def due_for_probe() -> QuerySet[HandlerCircuit]:
    """Circuits to let a probe through: open past their cool-down, or half-open with no probe under way."""
    running = Delivery.objects.filter(id=OuterRef("probe_delivery_id"), status=Delivery.Status.DISPATCHED)
    open_past = Q(state=State.OPEN, retry_at__lte=Now())
    half_open_idle = Q(state=State.HALF_OPEN) & ~Exists(running)
    return HandlerCircuit.objects.filter(paused=False).filter(open_past | half_open_idle)


def let_probe_through(circuit: HandlerCircuit, probe: Delivery | None) -> None:
    """Half-open the circuit with this delivery as its probe (None: the next delivery to come is)."""
    probe_id = probe.id if probe else None
    if (circuit.state, circuit.probe_delivery_id) == (State.HALF_OPEN, probe_id):
        return  # an idle half-open circuit still waiting for a delivery: nothing to write
    circuit.state, circuit.probe_delivery_id = State.HALF_OPEN, probe_id
    circuit.save(update_fields=["state", "probe_delivery_id", "updated_at"])
    if probe:
        logger.info("outbox: circuit of %s is half-open: delivery %s probes the way", circuit.handler, probe.id)


# Operators ------------------------------------------------------------------------------------------------------


def handler_pause(*, handler: str, user: AbstractBaseUser | None = None) -> HandlerCircuit:
    """Stop dispatching to a handler until it is resumed. What is running finishes; nothing is lost."""
    require_subscribed(handler)
    with transaction.atomic():
        circuit = _locked(handler)
        # By id: the user model is the project's (AUTH_USER_MODEL), the outbox knows only AbstractBaseUser.
        circuit.paused, circuit.paused_at, circuit.paused_by_id = True, timezone.now(), user.pk if user else None
        circuit.save()
    logger.warning("outbox: handler %s paused by %s", handler, user or "a command")
    return circuit


def handler_resume(*, handler: str) -> HandlerCircuit:
    """Dispatch to the handler again at once: unpause it and close its circuit."""
    require_subscribed(handler)
    with transaction.atomic():
        circuit = _locked(handler)
        circuit.paused, circuit.paused_at, circuit.paused_by = False, None, None
        circuit.state, circuit.consecutive_failures, circuit.retry_at, circuit.probe_delivery_id = (
            State.CLOSED,
            0,
            None,
            None,
        )
        circuit.save()
        _kick()
    logger.warning("outbox: handler %s resumed", handler)
    return circuit


class UnknownHandler(Exception):
    """No subscription has that name."""


def require_subscribed(handler: str) -> None:
    if subscriptions.get(handler) is None:
        names = ", ".join(sorted(s.name for s in subscriptions.all()))
        raise UnknownHandler(f"No handler is subscribed as {handler!r}. Subscribed handlers: {names}.")


def circuits_ensure(names: Iterable[str] | None = None) -> None:
    """Give every subscribed handler (or these) a circuit row, so the admin can list and pause each."""
    names = list(names) if names is not None else [s.name for s in subscriptions.all()]
    HandlerCircuit.objects.bulk_create([HandlerCircuit(handler=n) for n in names], ignore_conflicts=True)


def _kick() -> None:
    kick_relay_on_commit()
