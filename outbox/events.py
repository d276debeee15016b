"""Domain events: the base class, the registry of wire names and the upcasters.

An event class names itself with a stable wire name and a schema version::

    class OrderConfirmed(DomainEvent):
        event_type: ClassVar[str] = "orders.OrderConfirmed"
        version: ClassVar[int] = 2
        aggregate_type: ClassVar[str] = "orders.Order"
        aggregate_id_field: ClassVar[str] = "order_id"

        order_id: UUID
        total: Money

Defining the class registers it; a second class with the same wire name is a
start-up error, because a wire name is never reused for another meaning.
Stored payloads of older versions are upcast on read by the chain registered
with :func:`upcaster`, so handlers only ever see the current shape.
"""

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from . import personal

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class EventRegistryError(Exception):
    """The event catalogue is inconsistent (a duplicate name, a bad upcaster)."""


class EventDecodeError(Exception):
    """A stored event cannot be turned into its current class: a poison event."""


class Money(BaseModel):
    """An amount of a currency. Always a ``Decimal``, never a float."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    currency: str

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError("currency must be a three-letter ISO 4217 code")
        return value.upper()


class DomainEvent(BaseModel):
    """Something that happened, in business words, that other contexts may react to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    aggregate_type: ClassVar[str]
    aggregate_id_field: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" in cls.__dict__:
            registry.register(cls)

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_id_field))


@dataclass(frozen=True)
class Envelope:
    """What is known about a stored event besides its payload.

    A handler also learns which attempt of its delivery this is, so that it
    can, say, give up with a business outcome on the last one instead of
    letting the delivery go dead.
    """

    event_id: uuid.UUID
    type: str
    version: int
    occurred_at: dt.datetime
    aggregate_type: str
    aggregate_id: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    traceparent: str = ""
    position: int = 0  # the outbox row id: the global order events were written in
    attempt: int = 1
    max_attempts: int = 1

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


class EventRegistry:
    """Wire name -> current event class, and the upcaster chain of each name."""

    def __init__(self) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_class: type[DomainEvent]) -> None:
        name = event_class.event_type
        existing = self._classes.get(name)
        if existing is not None and _qualified(existing) != _qualified(event_class):
            raise EventRegistryError(
                f"Event type {name!r} is already registered by {_qualified(existing)}; wire names are never reused."
            )
        if event_class.version < 1:
            raise EventRegistryError(f"{name}: version must be 1 or more")
        self._classes[name] = event_class

    def add_upcaster(self, event_type: str, from_version: int, func: Upcaster) -> None:
        key = (event_type, from_version)
        if key in self._upcasters:
            raise EventRegistryError(f"Two upcasters for {event_type} v{from_version}")
        self._upcasters[key] = func

    def is_registered(self, event_type: str) -> bool:
        return event_type in self._classes

    def has_upcaster(self, event_type: str, from_version: int) -> bool:
        return (event_type, from_version) in self._upcasters

    def get(self, event_type: str) -> type[DomainEvent]:
        try:
            return self._classes[event_type]
        except KeyError:
            raise EventDecodeError(f"Unknown event type {event_type!r}: no class is registered for it.") from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def upcast(self, event_type: str, version: int, payload: Payload) -> Payload:
        """Apply the chain ``v(n) -> v(n+1) -> ... -> current`` to a stored payload."""
        current = self.get(event_type).version
        if version > current:
            raise EventDecodeError(
                f"{event_type} v{version} is newer than this code knows (v{current}); deploy the newer code."
            )
        for step in range(version, current):
            func = self._upcasters.get((event_type, step))
            if func is None:
                raise EventDecodeError(f"No upcaster from {event_type} v{step} to v{step + 1}.")
            try:
                payload = func(dict(payload))
            except Exception as exc:  # the stored row is what it is: a payload the chain cannot read is poison
                raise EventDecodeError(
                    f"{event_type} v{version} cannot be upcast from v{step} to v{step + 1}: {type(exc).__name__}: {exc}"
                ) from exc
        return payload

    def decode(self, event_type: str, version: int, payload: Payload) -> DomainEvent:
        """The current-version event for a stored row, or :class:`EventDecodeError`."""
        event_class = self.get(event_type)
        try:
            payload, forgotten = personal.unseal(payload)
        except personal.PersonalDataError as exc:
            raise EventDecodeError(f"{event_type} v{version}: {exc}") from exc
        payload = self.upcast(event_type, version, payload)
        if forgotten:  # personal data of a forgotten subject reads as erased
            payload = personal.erase(event_class, payload, forgotten)
        try:
            return event_class.model_validate(payload)
        except ValidationError as exc:
            raise EventDecodeError(f"{event_type} v{version} payload is invalid: {_summary(exc)}") from exc


def _summary(exc: ValidationError) -> str:
    """Pydantic's errors on one line, each naming its field, without the values (they may be personal data)."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the payload'}: {e['msg']}" for e in problems)


def _qualified(event_class: type) -> str:
    return f"{event_class.__module__}.{event_class.__qualname__}"


registry = EventRegistry()


def upcaster(event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``func(payload_vN) -> payload_vN+1`` for one step of an event's history."""

    def decorate(func: Upcaster) -> Upcaster:
        registry.add_upcaster(event_type, from_version, func)
        return func

    return decorate
