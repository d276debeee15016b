"""Database helpers the contexts share."""

from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


def locked_or_created(model: type[M], *, defaults: dict[str, Any] | None = None, **lookup: Any) -> M:
    """The one row ``lookup`` finds, locked ``FOR UPDATE``; created with ``defaults`` when there is none.

    Call it inside a transaction, with a ``lookup`` a unique constraint covers.
    A row that exists is locked in one statement. Otherwise ``get_or_create``
    inserts it (the new row is ours until we commit); a concurrent creator of
    the same row waits on the unique index, gets the ``IntegrityError``
    ``get_or_create`` retries with a read, and then locks the row the winner
    made. So exactly one row exists, and the caller holds it.
    """
    row = model._default_manager.select_for_update().filter(**lookup).first()
    if row is not None:
        return row
    row, created = model._default_manager.get_or_create(defaults=defaults, **lookup)
    return row if created else model._default_manager.select_for_update().get(pk=row.pk)
