"""Schema snapshots: a class that changes shape without a new version and an upcaster fails the check.

Each test defines its event classes in a module of its own, written to a
temporary folder, against a registry of its own, and keeps their snapshots in
that folder: nothing of the project's catalogue is touched.
"""

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from django.core.management import CommandError, call_command

from outbox import events, schemas

PARCEL_ID = "00000000-0000-4000-8000-000000000001"

V1 = '''
from typing import ClassVar
from uuid import UUID

from outbox.events import DomainEvent


class ParcelWeighed(DomainEvent):
    """A parcel was put on the scales."""

    event_type: ClassVar[str] = "tmp.ParcelWeighed"
    aggregate_type: ClassVar[str] = "tmp.Parcel"
    aggregate_id_field: ClassVar[str] = "parcel_id"

    parcel_id: UUID
    grams: int
'''

CHANGED = V1.replace("grams: int", "grams: float")

REDOCUMENTED = V1.replace("put on the scales", "weighed at the depot").replace("grams: int", "grams: int  # whole")

BUMPED = '''
from typing import ClassVar
from uuid import UUID

from outbox.events import DomainEvent, upcaster


class ParcelWeighed(DomainEvent):
    """A parcel was put on the scales."""

    event_type: ClassVar[str] = "tmp.ParcelWeighed"
    version: ClassVar[int] = 2
    aggregate_type: ClassVar[str] = "tmp.Parcel"
    aggregate_id_field: ClassVar[str] = "parcel_id"

    parcel_id: UUID
    kilograms: float


@upcaster("tmp.ParcelWeighed", from_version=1)
def _v1_to_v2(payload: dict) -> dict:
    return {"parcel_id": payload["parcel_id"], "kilograms": payload["grams"] / 1000}
'''

BUMPED_WITHOUT_UPCASTER = BUMPED[: BUMPED.index("\n\n@upcaster")]

BUMPED_WITH_A_BROKEN_UPCASTER = BUMPED.replace('"kilograms": payload["grams"] / 1000', '"kilos": payload["grams"]')


@pytest.fixture
def registry(monkeypatch) -> events.EventRegistry:
    """A registry of the test's own: classes it defines and upcasters it registers land here, not in the project's."""
    private = events.EventRegistry()
    monkeypatch.setattr(events, "registry", private)
    return private


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "event_schemas"


@pytest.fixture
def define(tmp_path, monkeypatch, registry):
    """Define (or redefine) the test's event module from source, as a deploy of new code would."""
    name = f"tmp_events_{uuid.uuid4().hex}"

    def define(source: str) -> ModuleType:
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return define


def record(registry, folder: Path, *examples: dict) -> Path:
    """Record the current versions, as ``outbox_catalogue --write-schemas`` does, with stored payloads as examples."""
    written, problems = schemas.write(registry, directory=folder)
    assert problems == []
    for path in written:
        snapshot = json.loads(path.read_text())
        snapshot["examples"] = list(examples)
        path.write_text(json.dumps(snapshot, indent=2))
    return folder / "tmp.ParcelWeighed.v1.json"


def test_the_schema_check_fails_on_a_changed_field_without_a_version_bump(registry, folder, define):
    # given v1 of an event, recorded with a payload it stored, and the check passing
    define(V1)
    snapshot = record(registry, folder, {"parcel_id": PARCEL_ID, "grams": 1250})
    assert schemas.check(registry, directory=folder) == []
    # when its field changes type, still as v1
    module = define(CHANGED)
    problems = schemas.check(registry, directory=folder)
    # then the check fails, naming the class, the field, and what to do
    assert len(problems) == 1
    problem = problems[0]
    assert f"{module.__name__}.ParcelWeighed (tmp.ParcelWeighed v1) differs from its snapshot" in problem
    assert 'field `grams`: `type` "integer" -> "number"' in problem
    assert "set version = 2 on ParcelWeighed" in problem
    assert '@upcaster("tmp.ParcelWeighed", from_version=1)' in problem
    assert "--write-schemas" in problem
    # and recording refuses to rewrite the released version, writing nothing
    recorded = snapshot.read_text()
    assert schemas.write(registry, directory=folder) == ([], problems)
    assert snapshot.read_text() == recorded


def test_the_schema_check_passes_when_the_version_is_bumped_with_an_upcaster(registry, folder, define):
    # given v1 recorded with a payload it stored
    define(V1)
    v1_snapshot = record(registry, folder, {"parcel_id": PARCEL_ID, "grams": 1250})
    v1_recorded = v1_snapshot.read_text()
    # when the change comes as v2, with an upcaster from v1, and v2 is recorded too
    module = define(BUMPED)
    written, problems = schemas.write(registry, directory=folder)
    v2_snapshot = folder / "tmp.ParcelWeighed.v2.json"
    v2 = json.loads(v2_snapshot.read_text())
    v2_snapshot.write_text(json.dumps({**v2, "examples": [{"parcel_id": PARCEL_ID, "kilograms": 0.5}]}))
    # then v2 is recorded beside v1, which is left as it was, and the check passes
    assert (written, problems) == ([v2_snapshot], [])
    assert v1_snapshot.read_text() == v1_recorded
    assert schemas.check(registry, directory=folder) == []
    # and the payload v1 stored reads as the current class
    assert registry.decode("tmp.ParcelWeighed", 1, {"parcel_id": PARCEL_ID, "grams": 1250}) == module.ParcelWeighed(
        parcel_id=uuid.UUID(PARCEL_ID), kilograms=1.25
    )


def test_a_bump_without_an_upcaster_fails_the_check(registry, folder, define):
    # given v1 recorded
    define(V1)
    record(registry, folder, {"parcel_id": PARCEL_ID, "grams": 1250})
    # when v2 comes without an upcaster, and is recorded
    module = define(BUMPED_WITHOUT_UPCASTER)
    record(registry, folder, {"parcel_id": PARCEL_ID, "kilograms": 0.5})
    problems = schemas.check(registry, directory=folder)
    # then
    assert problems == [
        f"{module.__name__}.ParcelWeighed is v2 but nothing upcasts a stored v1 payload: register "
        '@upcaster("tmp.ParcelWeighed", from_version=1) turning a v1 payload into v2.'
    ]


def test_a_stored_payload_the_upcasters_no_longer_read_fails_the_check(registry, folder, define):
    # given v1 recorded with a payload it stored
    define(V1)
    record(registry, folder, {"parcel_id": PARCEL_ID, "grams": 1250})
    # when v2's upcaster turns it into something v2 does not accept
    define(BUMPED_WITH_A_BROKEN_UPCASTER)
    record(registry, folder, {"parcel_id": PARCEL_ID, "kilograms": 0.5})
    problems = schemas.check(registry, directory=folder)
    # then
    assert len(problems) == 1
    assert "tmp.ParcelWeighed.v1.json examples[0], a stored tmp.ParcelWeighed v1, no longer decodes" in problems[0]
    assert "kilograms: Field required" in problems[0]


def test_an_example_that_is_not_of_its_version_fails_the_check(registry, folder, define):
    # given v1 recorded with an example that v1 never stored (it has v2's field)
    define(V1)
    record(registry, folder, {"parcel_id": PARCEL_ID, "kilograms": 0.5})
    # when
    problems = schemas.check(registry, directory=folder)
    # then
    assert len(problems) == 1
    assert "tmp.ParcelWeighed.v1.json examples[0] is not a v1 payload" in problems[0]


def test_a_new_event_must_be_recorded_with_an_example(registry, folder, define):
    # given a new event class, never recorded
    module = define(V1)
    # when / then
    assert schemas.check(registry, directory=folder) == [
        f"tmp.ParcelWeighed v1 ({module.__name__}.ParcelWeighed) has no snapshot: run "
        "`python manage.py outbox_catalogue --write-schemas`, then add a payload of it to the file's `examples`."
    ]
    # and once recorded, its snapshot still needs a payload as the version stored it
    record(registry, folder)
    assert schemas.check(registry, directory=folder) == [
        f"{schemas.shown(folder / 'tmp.ParcelWeighed.v1.json')} has no `examples`: add at least one payload as "
        "tmp.ParcelWeighed v1 was stored (the outbox_event row's payload), so that the suite proves it still decodes."
    ]


def test_prose_is_not_shape_a_docstring_edit_needs_no_new_version(registry, folder, define):
    # given v1 recorded
    define(V1)
    record(registry, folder, {"parcel_id": PARCEL_ID, "grams": 1250})
    # when only its docstring changes
    define(REDOCUMENTED)
    # then
    assert schemas.check(registry, directory=folder) == []


def test_a_removed_event_class_whose_payloads_are_stored_fails_the_check(registry, folder, define):
    # given a recorded event
    define(V1)
    record(registry, folder, {"parcel_id": PARCEL_ID, "grams": 1250})
    # when its class is gone
    problems = schemas.check(events.EventRegistry(), directory=folder)
    # then
    assert problems == [
        f"{schemas.shown(folder / 'tmp.ParcelWeighed.v1.json')} records tmp.ParcelWeighed, which no event class "
        "registers any more: its stored payloads could not be read. Keep the class (and its upcasters)."
    ]


def test_the_command_cannot_both_write_and_check():
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("outbox_catalogue", "--write-schemas", "--check-schemas")
