"""Where the sandbox providers keep their state: a store of their own, not our transaction.

A real payment provider or carrier keeps what it did in its own database: when
our transaction rolls back after it charged or booked, the charge or booking
stays. The sandbox adapters' models are sent to the ``sandbox`` database alias
(``SANDBOX_DATABASE_URL``), reached through a connection of its own, so our
rollback cannot undo them and every process sees them. By default the alias
is the same PostgreSQL database as ``default`` (the tables are migrated with
everything else), or a separate SQLite file on the embedded default (migrated
by ``manage.py migrate --database sandbox``), since a second connection to
the handler's SQLite file would wait on its write lock.
"""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

P = ParamSpec("P")
T = TypeVar("T")

PROVIDER_STORE = "sandbox"
# The sandbox providers' models, as "app_label.model_name".
PROVIDER_MODELS = frozenset({"payments.sandboxcharge", "payments.sandboxcall", "shipping.sandboxbooking"})


class ProviderStoreRouter:
    """Sends the sandbox providers' models to their own store; everything else to ``default``."""

    def db_for_read(self, model, **hints) -> str | None:
        configured = PROVIDER_STORE in connections.settings
        return PROVIDER_STORE if configured and _is_provider(model._meta.label_lower) else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool | None:
        if store_shares_default():
            return None  # one database: its tables are migrated once, with the rest, through either alias
        is_provider = model_name is not None and _is_provider(f"{app_label}.{model_name}")
        if db == PROVIDER_STORE:
            return is_provider  # nothing else (data migrations included) belongs in the provider's store
        return False if is_provider else None


def store_shares_default() -> bool:
    """Whether the provider store is the ``default`` database itself (through another connection)."""
    if PROVIDER_STORE not in connections.settings:
        return True
    store, default = connections[PROVIDER_STORE].settings_dict, connections["default"].settings_dict
    if store.get("TEST", {}).get("MIRROR") == "default":
        return True  # under test, before the test database is named on the mirror too
    return all(store.get(key) == default.get(key) for key in ("ENGINE", "NAME", "HOST", "PORT"))


def provider_call(unavailable: type[Exception] | None = None) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Make a sandbox provider call survive a store connection the server closed, as an HTTP client does.

    A client keeps its connection to a provider open between calls; when the
    server has closed it meanwhile (a restart, an administrator terminating
    it), the client drops it and sends the request again on a new one. The
    call is tried once more on a fresh connection when the store's connection
    turns out dead. That is safe: each call is one transaction of the
    provider's own, keyed by its idempotency key, so a first try that broke
    either committed (the retry finds it) or left nothing. When the store
    stays unreachable, ``unavailable`` (the provider's transient error) is
    raised, as a real client raises when it cannot reach its provider.
    """

    def decorate(call: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(call)
        def reconnecting(*args: P.args, **kwargs: P.kwargs) -> T:
            store = _store_connection()
            held = store.connection
            try:
                return call(*args, **kwargs)
            except (OperationalError, InterfaceError):
                if not _dropped(store, held):
                    raise
            try:
                return call(*args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                if unavailable is None or store.in_atomic_block:
                    raise
                raise unavailable(f"the provider could not be reached: {exc}") from exc

        return reconnecting

    return decorate


def _store_connection() -> BaseDatabaseWrapper:
    return connections[PROVIDER_STORE if PROVIDER_STORE in connections.settings else "default"]


def _dropped(store: BaseDatabaseWrapper, held: object) -> bool:
    """Whether the failed call's connection broke (Django drops a connection whose rollback failed).

    Not when the call ran inside an outer transaction of the store: that one is not ours to retry.
    """
    if store.in_atomic_block:
        return False
    return held is None or store.connection is not held or not store.is_usable()


def _is_provider(label: str) -> bool:
    return label in PROVIDER_MODELS
