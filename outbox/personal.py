"""Personal data in an immutable log: sealed under its data subject's key, erased by destroying the key.

The log is append-only (a trigger refuses updates and deletes), so a field
that holds personal data, or a secret such as a card token, is never
stored in the clear. The event class says which fields those are, and
whose data each one is::

    class OrderShipped(DomainEvent):
        customer_email: Annotated[str, Personal("customer")] = ""

and whoever publishes names the subject of each kind::

    publish(event, subjects={"customer": "customer:42"})

The stored payload then holds ``{"sealed_for": "customer:42", "ciphertext":
"gAAAA..."}`` in place of the value: Fernet (AES-128-CBC with an
HMAC-SHA256) under a key per subject, held in ``outbox_subject_key``, never
in the log. :func:`forget_subject` deletes the key (crypto-shredding): every
event still decodes, and each sealed field of that subject reads as its
``erased`` value (``""`` unless the marker says otherwise), in handlers,
replays, traces and "as of" folds alike. A key exists only while the subject
has data; the first seal creates it.

:func:`seal_value` and :func:`open_value` do the same for a value a context
keeps in its own table (a draft order's payment token).
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.db import connections, transaction
from django.utils import timezone
from pydantic import BaseModel

SEALED_FOR, CIPHERTEXT = "sealed_for", "ciphertext"


class PersonalDataError(Exception):
    """A sealed value that cannot be opened with its subject's key (tampered, or sealed under another key)."""


@dataclass(frozen=True)
class Personal:
    """Marks an event field as personal data of a subject of the kind ``kind`` (``Annotated[str, Personal(...)]``).

    ``erased`` is what the field reads as once its subject was forgotten; it
    is used as it is, without validation, so it may be a model instance built
    with ``model_construct`` (an address of empty lines).
    """

    kind: str
    erased: Any = ""


def personal_fields(event_class: type[BaseModel]) -> dict[str, Personal]:
    """The personal fields of an event class: name -> marker."""
    cached: dict[str, Personal] | None = event_class.__dict__.get("_personal_fields")
    if cached is None:
        cached = {
            name: marker
            for name, field in event_class.model_fields.items()
            for marker in field.metadata
            if isinstance(marker, Personal)
        }
        # A plain class attribute, not a field: pydantic ignores it (and BaseModel declares no such name).
        setattr(event_class, "_personal_fields", cached)  # noqa: B010
    return cached


def seal(event: BaseModel, subjects: Mapping[str, str] | None, *, using: str = "default") -> dict[str, Any]:
    """The event's payload as stored: each personal field sealed under the key of its subject."""
    payload = event.model_dump(mode="json")
    fields = personal_fields(type(event))
    if not fields:
        return payload
    subjects = subjects or {}
    missing = sorted({marker.kind for marker in fields.values()} - set(subjects))
    if missing:
        raise ValueError(
            f"{type(event).__name__} holds personal data of {', '.join(missing)}: "
            f"publish it with subjects={{{', '.join(f'{kind!r}: ...' for kind in missing)}}}."
        )
    keys = _keys({subjects[marker.kind] for marker in fields.values()}, create=True, using=using)
    for name, marker in fields.items():
        subject = subjects[marker.kind]
        payload[name] = _sealed(subject, keys[subject], payload[name])
    return payload


def unseal(payload: Mapping[str, Any], *, using: str = "default") -> tuple[dict[str, Any], set[str]]:
    """A stored payload with its sealed fields opened, and the names of those whose subject was forgotten.

    A forgotten field is left out of the payload; :func:`erase` puts its
    ``erased`` value in once the payload is upcast to its current class.
    """
    if not isinstance(payload, Mapping):  # not an event's payload at all: validation will say so
        return payload, set()
    sealed = {name: value for name, value in payload.items() if is_sealed(value)}
    if not sealed:
        return dict(payload), set()
    keys = _keys({value[SEALED_FOR] for value in sealed.values()}, create=False, using=using)
    opened, forgotten = dict(payload), set()
    for name, value in sealed.items():
        key = keys.get(value[SEALED_FOR])
        if key is None:
            forgotten.add(name)
            del opened[name]
        else:
            opened[name] = _opened(key, value)
    return opened, forgotten


def erase(event_class: type[BaseModel], payload: dict[str, Any], forgotten: Iterable[str]) -> dict[str, Any]:
    """``payload`` with each forgotten personal field of ``event_class`` as its ``erased`` value."""
    fields = personal_fields(event_class)
    for name in forgotten:
        if name in fields:
            payload[name] = fields[name].erased
    return payload


def seal_field(subject: str, value: Any, *, using: str = "default") -> dict[str, str]:
    """``value`` (JSON-able) sealed under ``subject``'s key, as a stored payload holds it."""
    return _sealed(subject, _keys({subject}, create=True, using=using)[subject], value)


def seal_value(subject: str, value: Any, *, using: str = "default") -> str:
    """``value`` (JSON-able) sealed under ``subject``'s key, as a string a column can keep."""
    return json.dumps(seal_field(subject, value, using=using), separators=(",", ":"))


def open_value(stored: str, *, using: str = "default") -> Any:
    """What :func:`seal_value` sealed, or None once its subject was forgotten."""
    value = json.loads(stored)
    key = _keys({value[SEALED_FOR]}, create=False, using=using).get(value[SEALED_FOR])
    return None if key is None else _opened(key, value)


def forget_subject(subject: str, *, using: str = "default") -> bool:
    """Destroy ``subject``'s key: whatever was sealed under it can never be read again. True if a key existed."""
    deleted, _ = _key_table().objects.using(using).filter(subject=subject).delete()
    return bool(deleted)


def forget_subjects(subjects: Iterable[str], *, using: str = "default") -> int:
    deleted, _ = _key_table().objects.using(using).filter(subject__in=list(subjects)).delete()
    return deleted


def is_sealed(value: Any) -> bool:
    """Whether a stored value is sealed (``{"sealed_for": ..., "ciphertext": ...}``)."""
    return (
        isinstance(value, dict)
        and len(value) == 2
        and isinstance(value.get(SEALED_FOR), str)
        and isinstance(value.get(CIPHERTEXT), str)
    )


def _sealed(subject: str, key: bytes, value: Any) -> dict[str, str]:
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return {SEALED_FOR: subject, CIPHERTEXT: Fernet(key).encrypt(plaintext).decode("ascii")}


def _opened(key: bytes, value: Mapping[str, str]) -> Any:
    try:
        return json.loads(Fernet(key).decrypt(value[CIPHERTEXT].encode()))
    except (InvalidToken, ValueError) as exc:
        raise PersonalDataError(
            f"A value sealed for {value[SEALED_FOR]!r} does not open with that subject's key: "
            "it was altered, or sealed under another key."
        ) from exc


_TAKE_KEYS = """
WITH wanted AS (SELECT unnest(%(subjects)s::text[]) AS subject, unnest(%(keys)s::text[]) AS key),
new AS (
    INSERT INTO outbox_subject_key (subject, key, created_at)
    SELECT subject, key, now() FROM wanted
    ON CONFLICT (subject) DO NOTHING
    RETURNING subject, key
)
SELECT subject, key FROM new
UNION ALL
SELECT subject, key FROM outbox_subject_key WHERE subject = ANY(%(subjects)s::text[])
"""


def _keys(subjects: set[str], *, create: bool, using: str) -> dict[str, bytes]:
    """Each subject's key; with ``create``, a new key for each that has none (one round trip on PostgreSQL)."""
    if create and not connections[using].in_atomic_block:
        raise RuntimeError("Personal data is sealed inside the transaction that writes it (transaction.atomic()).")
    if not create:
        rows = _key_table().objects.using(using).filter(subject__in=subjects).values_list("subject", "key")
        return {subject: key.encode("ascii") for subject, key in rows}
    ordered = sorted(subjects)
    fresh = [Fernet.generate_key().decode("ascii") for _ in ordered]
    if connections[using].vendor == "postgresql":
        with connections[using].cursor() as cursor:
            cursor.execute(_TAKE_KEYS, {"subjects": ordered, "keys": fresh})
            keys = {subject: key.encode("ascii") for subject, key in cursor.fetchall()}
        if len(keys) < len(subjects):
            # Another transaction inserted a key first: our insert waited for it to commit and skipped, but the
            # statement's snapshot was older than that commit. A new statement (read committed) sees it.
            keys |= _keys(subjects - keys.keys(), create=False, using=using)
        return keys
    with transaction.atomic(using=using):
        for subject, key in zip(ordered, fresh, strict=True):
            _key_table().objects.using(using).get_or_create(
                subject=subject, defaults={"key": key, "created_at": timezone.now()}
            )
    return _keys(subjects, create=False, using=using)


def _key_table() -> Any:
    from .models import SubjectKey  # not at import: event modules import this one before the apps are ready

    return SubjectKey
