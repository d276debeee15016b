"""The least-privilege staff groups ``migrate`` creates (config/roles.py)."""

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission

from config.roles import GROUPS, groups_ensure, on_post_migrate

pytestmark = pytest.mark.django_db

SUPPORT = {
    "orders.view_order",
    "orders.change_order",
    "orders.view_orderline",
    "orders.view_ordersaga",
    "outbox.view_delivery",
    "outbox.view_deadletter",
    "outbox.retry_delivery",
}


def perms_of(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_the_database_has_the_support_group_with_its_permissions_and_no_more():
    assert set(GROUPS) == {"Support"}
    assert perms_of(Group.objects.get(name="Support")) == SUPPORT


def test_an_existing_group_is_left_as_the_operator_made_it():
    # given an operator who took the right to cancel away from Support
    support = Group.objects.get(name="Support")
    support.permissions.remove(Permission.objects.get(content_type__app_label="orders", codename="change_order"))
    # when migrate runs again
    created = groups_ensure(apps=apps, using="default", verbosity=0)
    # then
    assert created == []
    assert perms_of(support) == SUPPORT - {"orders.change_order"}


def test_a_fresh_database_gets_the_group_before_the_apps_permissions_exist():
    """``post_migrate`` reaches the groups (sent for auth) before orders and outbox have made their permissions."""
    # given a database without the group or the permissions it needs
    Group.objects.filter(name="Support").delete()
    Permission.objects.filter(content_type__app_label__in=["orders", "outbox"]).delete()
    # when
    on_post_migrate(apps.get_app_config("auth"), apps=apps, using="default", verbosity=0)
    # then
    assert perms_of(Group.objects.get(name="Support")) == SUPPORT
