"""Process managers (sagas) as the catalogue sees them: who feeds one, and what it decides.

A context that runs a saga declares it at the end of its ``handlers.py``,
beside its subscriptions::

    SAGAS = [Saga("order saga", fed_by=[s.handler for s in SUBSCRIPTIONS], transitions=saga.TRANSITIONS)]

``transitions`` is the saga's own decision table: rows with ``source`` (the
states it applies in), ``when`` (the facts, in words), ``target`` (the state
it moves to) and ``publishes`` (the wire name of the event the step
publishes, or ""). The outbox only reads them, to draw the flow in
``docs/events.md``; what a row does is the saga's business.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

from .events import registry
from .subscriptions import Handler, subscriptions


class Transition(Protocol):
    """What the catalogue reads of a row of a saga's decision table."""

    @property
    def source(self) -> tuple[str, ...]: ...
    @property
    def when(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def publishes(self) -> str: ...


@dataclass(frozen=True)
class Saga:
    """A saga: the handlers that tell it facts, and its decision table."""

    name: str
    fed_by: Sequence[Handler]
    transitions: Sequence[Transition]
    app_label: str = ""  # the declaring app's, set when it is collected


class SagaRegistry:
    def __init__(self) -> None:
        self._sagas: list[Saga] = []

    def add_all(self, sagas: Iterable[Saga], *, app_label: str) -> None:
        for saga in sagas:
            saga = replace(saga, app_label=app_label, fed_by=tuple(saga.fed_by), transitions=tuple(saga.transitions))
            _check(saga)
            self._sagas.append(saga)

    def all(self) -> list[Saga]:
        return list(self._sagas)


def _check(saga: Saga) -> None:
    """Refuse, at start-up, a declaration the diagram would draw wrong."""
    subscribed = {s.handler for s in subscriptions.all()}
    for handler in saga.fed_by:
        if handler not in subscribed:
            raise ImproperlyConfigured(
                f"Saga {saga.name!r} is fed by {handler.__qualname__}, which subscribes to nothing."
            )
    for row in saga.transitions:
        if row.publishes and not registry.is_registered(row.publishes):
            raise ImproperlyConfigured(
                f"Saga {saga.name!r}: a transition publishes {row.publishes!r}, which no event class registers."
            )


sagas = SagaRegistry()
