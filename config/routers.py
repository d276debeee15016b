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

from django.db import connections

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


def _is_provider(label: str) -> bool:
    return label in PROVIDER_MODELS
