"""Least-privilege staff: the groups an operator puts staff in, so nobody needs to be a superuser to work.

Staff status (``is_staff``) only lets someone into the admin site; what they
may see and do there, over REST and on the shop's pages is each model
permission they hold, directly or through a group. ``migrate`` creates the
groups below, with these permissions, when they do not exist; it never
changes a group that exists, so an operator's edits stay. (To retire a group,
empty it; a deleted one comes back on the next ``migrate``.)

- **Support**: reads every order (its lines and saga in the admin) and
  cancels any (``orders.view_order``, ``orders.change_order``); reads the
  dead letters and retries or discards them (``outbox.view_delivery``,
  ``outbox.view_deadletter``, ``outbox.retry_delivery``). Not the event log,
  stock, the providers' sandboxes or users.
"""

from typing import Any

from django.apps import AppConfig
from django.contrib.auth.management import create_permissions
from django.db import router

GROUPS: dict[str, tuple[str, ...]] = {
    "Support": (
        "orders.view_order",
        "orders.change_order",
        "orders.view_orderline",
        "orders.view_ordersaga",
        "outbox.view_delivery",
        "outbox.view_deadletter",
        "outbox.retry_delivery",
    ),
}


def groups_ensure(*, apps: Any, using: str, verbosity: int = 1) -> list[str]:
    """Create each group of :data:`GROUPS` that does not exist, with its permissions; the names of those created.

    ``apps`` is the app registry of the models (``post_migrate`` gives the
    migrated state's). The permissions are created first if need be: on a
    fresh database, ``post_migrate`` reaches this before the apps they belong to.
    """
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    if not router.allow_migrate_model(using, Group):
        return []
    wanted = {perm.partition(".")[0] for perms in GROUPS.values() for perm in perms}
    for label in sorted(wanted):
        create_permissions(_global_app_config(label), verbosity=0, using=using, apps=apps)
    created = []
    for name, perms in GROUPS.items():
        group, new = Group.objects.using(using).get_or_create(name=name)
        if not new:
            continue
        group.permissions.set([_permission(Permission, using, perm) for perm in perms])
        created.append(name)
        if verbosity >= 1:
            print(f"Created the staff group {name!r} with {', '.join(perms)}.")
    return created


def _global_app_config(label: str) -> AppConfig:
    from django.apps import apps as global_apps

    return global_apps.get_app_config(label)


def _permission(Permission: Any, using: str, perm: str) -> Any:
    app_label, codename = perm.split(".")
    return Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)


def on_post_migrate(sender: AppConfig, *, using: str, verbosity: int = 1, apps: Any = None, **kwargs: Any) -> None:
    """``migrate`` gives the migrated state's apps; ``flush`` gives none (the installed models are the state)."""
    from django.apps import apps as global_apps

    groups_ensure(apps=apps or global_apps, using=using, verbosity=verbosity)
