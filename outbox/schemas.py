"""Schema snapshots: every version of every event, recorded, so that a change of shape is seen.

A stored event is read for ever (the log is append-only), and a released
version's shape is what its payloads were written in. So each (wire name,
version) has a committed snapshot, ``<app>/event_schemas/<type>.v<N>.json``
beside the app's ``events.py`` (as migrations are beside its models): the
class's JSON Schema, plus ``examples``, payloads as that version stored them.

:func:`check` reports a class whose shape differs from its version's
snapshot, a version with no upcaster from the one before, and an example that
is not of its version or no longer decodes to the current class; the test
suite and ``manage.py outbox_catalogue --check-schemas`` run it.
:func:`write` (``--write-schemas``) records versions not yet recorded and
refuses to rewrite a released one. Titles and descriptions are not shape:
editing a docstring needs no new version.
"""

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps
from jsonschema import Draft202012Validator

from .events import DomainEvent, EventDecodeError, EventRegistry

SNAPSHOT_DIR = "event_schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMMENT = (
    "Recorded by `manage.py outbox_catalogue --write-schemas`. The shape of this version: never change it; "
    "a change of shape is a new version with an upcaster. Add to `examples` payloads as this version stored "
    "them: the test suite decodes each to the current class."
)
_FILE_NAME = re.compile(r"^(?P<type>.+)\.v(?P<version>[1-9][0-9]*)\.json$")
_ANNOTATIONS = frozenset({"$schema", "$comment", "title", "description", "examples"})
_NAMED = frozenset({"properties", "patternProperties"})  # their keys are field names, not keywords

Include = Callable[[str], bool]
Schema = dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """One recorded version: its file and what the file holds."""

    event_type: str
    version: int
    path: Path
    schema: Schema

    @property
    def examples(self) -> list[Any]:
        return self.schema.get("examples", [])


def schema_of(event_class: type[DomainEvent]) -> Schema:
    """The class's JSON Schema (what a payload of its version must be), as a snapshot records it."""
    return {"$schema": DIALECT, "$comment": COMMENT, **event_class.model_json_schema(), "examples": []}


def directory_for(event_class: type[DomainEvent], directory: Path | None = None) -> Path | None:
    """Where the class's snapshots live: its app's ``event_schemas/`` (None outside an installed app)."""
    if directory is not None:
        return directory
    config = apps.get_containing_app_config(event_class.__module__)
    return None if config is None else Path(config.path) / SNAPSHOT_DIR


def check(registry: EventRegistry, *, include: Include = lambda name: True, directory: Path | None = None) -> list[str]:
    """Every way the selected classes and their snapshots disagree, each as a sentence saying what to do.

    ``directory`` holds every snapshot instead of each app's own folder (for tests of the check itself).
    """
    snapshots, problems = _load(_directories(directory), include)
    for name in (n for n in registry.names() if include(n)):
        event_class = registry.get(name)
        if directory_for(event_class, directory) is not None:
            problems += _check_class(registry, event_class, snapshots)
    problems += [
        f"{shown(s.path)} records {s.event_type}, which no event class registers any more: its stored "
        f"payloads could not be read. Keep the class (and its upcasters)."
        for s in snapshots.values()
        if not registry.is_registered(s.event_type)
    ]
    return problems


def write(
    registry: EventRegistry, *, include: Include = lambda name: True, directory: Path | None = None
) -> tuple[list[Path], list[str]]:
    """Record each selected class's current version if it is not recorded yet: (paths written, problems).

    A recorded version whose class changed shape is refused, and then nothing is written.
    """
    new: dict[Path, Schema] = {}
    problems: list[str] = []
    for name in (n for n in registry.names() if include(n)):
        event_class = registry.get(name)
        folder = directory_for(event_class, directory)
        if folder is None:
            continue
        path = folder / f"{name}.v{event_class.version}.json"
        if not path.exists():
            new[path] = schema_of(event_class)
        elif isinstance(recorded := _read(path), str):
            problems.append(recorded)
        elif changes := differences(recorded, schema_of(event_class)):
            problems.append(_changed(event_class, path, changes))
    if problems:
        return [], problems
    for path, schema in new.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return sorted(new), []


def differences(recorded: Schema, current: Schema) -> list[str]:
    """How ``current`` differs in shape from ``recorded``, field by field ("field `total.amount` added")."""
    return _diff(shape(recorded), shape(current), "")


def shape(schema: Schema) -> Schema:
    """What a payload must be, without names and prose: ``$ref`` inlined, titles and descriptions dropped."""
    return _inline(schema, schema.get("$defs", {}), ())


def _inline(node: Any, defs: Schema, seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in seen:  # a cycle keeps its $ref
        target = {**defs.get(ref.removeprefix("#/$defs/"), {}), **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(target, defs, (*seen, ref))
    out = {}
    for key, value in node.items():
        if key in _NAMED and isinstance(value, dict):
            out[key] = {name: _inline(sub, defs, seen) for name, sub in value.items()}
        elif key not in _ANNOTATIONS and key != "$defs":
            out[key] = _inline(value, defs, seen)
    return out


def _diff(old: Any, new: Any, field: str) -> list[str]:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [f"{_where(field)}: {_brief(old)} -> {_brief(new)}"]
    changes = _diff_properties(old, new, field)
    for key in sorted((old.keys() | new.keys()) - {"properties", "required"}):
        before, after = old.get(key), new.get(key)
        if key == "items" and isinstance(before, dict) and isinstance(after, dict):
            changes += _diff(before, after, f"{field}[]")
        elif (
            key in ("anyOf", "oneOf", "allOf", "prefixItems")
            and isinstance(before, list)
            and isinstance(after, list)
            and len(before) == len(after)
        ):
            changes += [c for b, a in zip(before, after, strict=True) for c in _diff(b, a, field)]
        elif before != after:
            changes.append(f"{_where(field)}: `{key}` {_brief(before)} -> {_brief(after)}")
    return changes


def _diff_properties(old: Schema, new: Schema, field: str) -> list[str]:
    before, after = old.get("properties", {}), new.get("properties", {})
    changes = [f"field `{_join(field, n)}` removed" for n in sorted(before.keys() - after.keys())]
    changes += [f"field `{_join(field, n)}` added" for n in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() & after.keys()):
        changes += _diff(before[name], after[name], _join(field, name))
    required_before, required_after = set(old.get("required", [])), set(new.get("required", []))
    kept = before.keys() & after.keys()
    changes += [f"field `{_join(field, n)}` is now required" for n in sorted((required_after - required_before) & kept)]
    changes += [f"field `{_join(field, n)}` is now optional" for n in sorted((required_before - required_after) & kept)]
    return changes


def _join(field: str, name: str) -> str:
    return f"{field}.{name}" if field else name


def _where(field: str) -> str:
    return f"field `{field}`" if field else "the payload"


def _brief(value: Any) -> str:
    if value is None:
        return "(none)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_class(registry: EventRegistry, event_class: type[DomainEvent], snapshots: dict) -> list[str]:
    name, current = event_class.event_type, event_class.version
    problems = [
        f"{name} has a snapshot of v{version} ({shown(s.path)}) but {_qualified(event_class)} is v{current}: "
        f"a version number never goes back; give the class version {version + 1} or more."
        for (type_, version), s in snapshots.items()
        if type_ == name and version > current
    ]
    broken = _missing_upcasters(registry, event_class)
    problems += [_no_upcaster(event_class, version) for version in broken]
    for version in range(1, current + 1):
        snapshot = snapshots.get((name, version))
        if snapshot is None:
            problems.append(_missing(event_class, version))
            continue
        if version == current and (changes := differences(snapshot.schema, schema_of(event_class))):
            problems.append(_changed(event_class, snapshot.path, changes))
        if not any(step >= version for step in broken):  # else its examples cannot be upcast: said already
            problems += _check_examples(registry, snapshot, event_class)
    return problems


def _missing_upcasters(registry: EventRegistry, event_class: type[DomainEvent]) -> list[int]:
    """The versions of the class's past that no upcaster turns into the next."""
    name = event_class.event_type
    return [version for version in range(1, event_class.version) if not registry.has_upcaster(name, version)]


def _no_upcaster(event_class: type[DomainEvent], version: int) -> str:
    return (
        f"{_qualified(event_class)} is v{event_class.version} but nothing upcasts a stored v{version} payload: "
        f'register @upcaster("{event_class.event_type}", from_version={version}) turning a v{version} payload '
        f"into v{version + 1}."
    )


def _missing(event_class: type[DomainEvent], version: int) -> str:
    name = event_class.event_type
    if version == event_class.version:
        return (
            f"{name} v{version} ({_qualified(event_class)}) has no snapshot: run "
            "`python manage.py outbox_catalogue --write-schemas`, then add a payload of it to the file's `examples`."
        )
    return (
        f"{name} v{version} has no snapshot, yet {_qualified(event_class)} is v{event_class.version}: every version "
        f"ever stored keeps one, so that its payloads are proved readable; restore {name}.v{version}.json from "
        "the git history of the app's event_schemas/."
    )


def _changed(event_class: type[DomainEvent], path: Path, changes: list[str]) -> str:
    name, version = event_class.event_type, event_class.version
    return (
        f"{_qualified(event_class)} ({name} v{version}) differs from its snapshot {shown(path)}: "
        f"{'; '.join(changes)}. A released version never changes shape: set version = {version + 1} on "
        f'{event_class.__name__}, register @upcaster("{name}", from_version={version}) turning a v{version} '
        f"payload into v{version + 1}, and run `python manage.py outbox_catalogue --write-schemas` (v{version}'s "
        f"snapshot stays as it is). Only if v{version} was never deployed: delete {shown(path)} and run it instead."
    )


def _check_examples(registry: EventRegistry, snapshot: Snapshot, event_class: type[DomainEvent]) -> list[str]:
    where, name, version = shown(snapshot.path), snapshot.event_type, snapshot.version
    if not snapshot.examples:
        return [
            f"{where} has no `examples`: add at least one payload as {name} v{version} was stored "
            "(the outbox_event row's payload), so that the suite proves it still decodes."
        ]
    problems = []
    validator = Draft202012Validator(snapshot.schema)
    for index, example in enumerate(snapshot.examples):
        if error := next(iter(validator.iter_errors(example)), None):
            at = ".".join(map(str, error.absolute_path)) or "the payload"
            problems.append(f"{where} examples[{index}] is not a v{version} payload ({at}: {error.message}).")
            continue
        try:
            registry.decode(name, version, example)
        except EventDecodeError as exc:
            problems.append(
                f"{where} examples[{index}], a stored {name} v{version}, no longer decodes to "
                f"{_qualified(event_class)}: {exc} Fix the upcaster chain, or the class."
            )
    return problems


def _directories(directory: Path | None) -> list[Path]:
    if directory is not None:
        return [directory]
    return [Path(config.path) / SNAPSHOT_DIR for config in apps.get_app_configs()]


def _load(directories: list[Path], include: Include) -> tuple[dict[tuple[str, int], Snapshot], list[str]]:
    snapshots: dict[tuple[str, int], Snapshot] = {}
    problems: list[str] = []
    for path in sorted(p for folder in directories if folder.is_dir() for p in folder.iterdir()):
        match = _FILE_NAME.match(path.name)
        if match is None:
            problems.append(f"{shown(path)} is not a snapshot: name them <event type>.v<version>.json.")
            continue
        key = (match["type"], int(match["version"]))
        if not include(key[0]):
            continue
        if key in snapshots:
            problems.append(f"{key[0]} v{key[1]} is recorded twice: {shown(snapshots[key].path)} and {shown(path)}.")
        elif isinstance(schema := _read(path), str):
            problems.append(schema)
        else:
            snapshots[key] = Snapshot(key[0], key[1], path, schema)
    return snapshots, problems


def _read(path: Path) -> Schema | str:
    """The snapshot's JSON, or a sentence saying why it cannot be read."""
    try:
        schema = json.loads(path.read_text())
    except ValueError as exc:
        return f"{shown(path)} is not JSON ({exc}): restore it from git, or delete it and run --write-schemas."
    return schema if isinstance(schema, dict) else f"{shown(path)} is not a JSON Schema object."


def shown(path: Path) -> str:
    """The path relative to the working directory (the project's root, for manage.py and pytest)."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def _qualified(event_class: type) -> str:
    return f"{event_class.__module__}.{event_class.__qualname__}"
