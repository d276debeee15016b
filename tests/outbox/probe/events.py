from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from outbox.events import DomainEvent, Money, upcaster
from outbox.personal import Personal


class Pinged(DomainEvent):
    event_type: ClassVar[str] = "probe.Pinged"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    seq: int = 0


class Priced(DomainEvent):
    """v2 carries Money; v1 carried ``price: float`` and ``currency``."""

    event_type: ClassVar[str] = "probe.Priced"
    version: ClassVar[int] = 2
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    price: Money


@upcaster("probe.Priced", from_version=1)
def _priced_v1_to_v2(payload: dict) -> dict:
    return {
        "thing_id": payload["thing_id"],
        "price": {"amount": str(payload["price"]), "currency": payload["currency"]},
    }


class Stepped(DomainEvent):
    """Delivered to an ordered handler."""

    event_type: ClassVar[str] = "probe.Stepped"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    seq: int
    fail: bool = False


class Hopped(DomainEvent):
    """Delivered to an ordered handler whose dead events do not hold the aggregate (``on_dead="skip"``)."""

    event_type: ClassVar[str] = "probe.Hopped"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    seq: int
    fail: bool = False


class Flaked(DomainEvent):
    event_type: ClassVar[str] = "probe.Flaked"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    fail_times: int = 0


class Slept(DomainEvent):
    event_type: ClassVar[str] = "probe.Slept"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    seconds: float


class Broke(DomainEvent):
    event_type: ClassVar[str] = "probe.Broke"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID


class Jammed(DomainEvent):
    """Delivered to a handler that, while switch ``jammed`` is on, fails in one of two ways (``part``)."""

    event_type: ClassVar[str] = "probe.Jammed"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    part: str  # "gear" or "belt": which failure
    number: int = 0


class Crashed(DomainEvent):
    """Delivered to a handler that kills its own worker process when ``how`` says so."""

    event_type: ClassVar[str] = "probe.Crashed"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    how: str = ""  # "sigkill" or "exit": how the handler kills its process; "" to just record


class Called(DomainEvent):
    """Delivered to a handler that calls an HTTP service of the test's (its downstream)."""

    event_type: ClassVar[str] = "probe.Called"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    seq: int = 0


class Judged(DomainEvent):
    """Delivered to a handler that raises what ``raises`` names, to try the exception policy."""

    event_type: ClassVar[str] = "probe.Judged"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    raises: str = ""  # "", "permanent", "later", "later-counted", or an exception class: KeyError, IndexError, ...


class Archived(DomainEvent):
    """History for the replay tests: written before some of its handlers existed (tests/outbox/test_replay.py)."""

    event_type: ClassVar[str] = "probe.Archived"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    seq: int = 0


class Postal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    line1: str
    city: str
    postal_code: str


ERASED_POSTAL = Postal.model_construct(name="", line1="", city="", postal_code="")


class Enrolled(DomainEvent):
    """A member's personal data in the log, sealed under the member's key (tests of outbox.personal)."""

    event_type: ClassVar[str] = "probe.Enrolled"
    aggregate_type: ClassVar[str] = "probe.Thing"
    aggregate_id_field: ClassVar[str] = "thing_id"

    thing_id: UUID
    member_no: int = 7
    plan: str = "C"  # not personal: stays readable
    email: Annotated[str, Personal("member")] = ""
    address: Annotated[Postal | None, Personal("member", erased=ERASED_POSTAL)] = None
