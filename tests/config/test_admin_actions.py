"""Every admin action declares a permission of its own, and staff without it neither see it nor can run it.

The walk covers every ModelAdmin registered on the admin site (the project's
and any a library registers) and the site-wide actions, so an action added
later without ``@admin.action(permissions=[...])`` fails here.
"""

from collections.abc import Callable, Iterator

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.forms.models import model_to_dict
from django.test import RequestFactory
from django.urls import reverse

from inventory.models import StockItem
from outbox import breaker
from outbox.models import HandlerCircuit, OutboxEvent
from tests.factories import CustomerFactory, make_product, place_order
from tests.support.deliveries import make_delivery
from tests.support.users import make_user

# Django's own: it declares "delete", and the read-only admins refuse delete to everyone.
DJANGO_DELETE = "delete_selected"


def registered_actions() -> Iterator[tuple[admin.ModelAdmin, Callable, str]]:
    """Each (model admin, action, name) of the site, site-wide actions included, before any per-request filtering."""
    for model_admin in admin.site._registry.values():
        for func, name, _description in model_admin._get_base_actions():
            yield model_admin, func, name


def project_actions() -> list[tuple[admin.ModelAdmin, str]]:
    return [(model_admin, name) for model_admin, _func, name in registered_actions() if name != DJANGO_DELETE]


def _id(value: object) -> str:
    if isinstance(value, admin.ModelAdmin):
        return value.model._meta.label_lower
    return str(value)


def test_every_admin_action_declares_the_permissions_it_needs():
    undeclared = sorted(
        f"{model_admin.model._meta.label}.{name}"
        for model_admin, func, name in registered_actions()
        if not getattr(func, "allowed_permissions", None)
    )
    assert undeclared == [], (
        f"Admin actions without a permission: {undeclared}. Declare one with @admin.action(permissions=[...]) "
        "and a has_<name>_permission method on the ModelAdmin."
    )


def test_every_site_wide_action_declares_the_permissions_it_needs():
    """Also walked above, through each admin; named here so a site with no admin using them still checks them."""
    undeclared = sorted(name for name, func in admin.site.actions if not getattr(func, "allowed_permissions", None))
    assert undeclared == [], f"Site-wide admin actions without a permission: {undeclared}."
    assert list(dict(admin.site.actions)[DJANGO_DELETE].allowed_permissions) == ["delete"]


def test_the_walk_finds_the_projects_actions():
    """A walk that found nothing would prove nothing: the actions the project has are all in it."""
    found = {f"{model_admin.model._meta.label_lower}.{name}" for model_admin, name in project_actions()}
    assert found >= {
        "inventory.stockitem.receive_ten",
        "orders.order.cancel_orders",
        "outbox.delivery.retry",
        "outbox.delivery.discard",
        "outbox.deadletter.retry",
        "outbox.deadletter.discard",
        "outbox.handlercircuit.pause",
        "outbox.handlercircuit.resume",
    }


# A row each action could change, per model: the action is tried on it.
def _stock_item() -> models.Model:
    return StockItem.objects.get(sku=make_product(on_hand=1).sku)


def _circuit() -> models.Model:
    breaker.circuits_ensure()
    return HandlerCircuit.objects.order_by("handler").first()


ROWS: dict[str, Callable[[], models.Model]] = {
    "auth.user": lambda: CustomerFactory(),
    "inventory.stockitem": _stock_item,
    "orders.order": lambda: place_order(),
    "outbox.delivery": lambda: make_delivery(status="dead"),
    "outbox.deadletter": lambda: make_delivery(status="dead"),
    "outbox.handlercircuit": _circuit,
}


def _view_permission(model: type[models.Model]) -> Permission:
    content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
    return Permission.objects.get(content_type=content_type, codename=f"view_{model._meta.model_name}")


def _state(row: models.Model) -> tuple[dict, int]:
    """The row's fields as the database has them, and how many events the log holds."""
    fresh = type(row)._base_manager.get(pk=row.pk)
    return model_to_dict(fresh), OutboxEvent.objects.count()


def _offered(response) -> set[str]:
    form = response.context["action_form"]
    return {name for name, _label in form.fields["action"].choices} if form is not None else set()


@pytest.mark.django_db
@pytest.mark.parametrize(("model_admin", "name"), project_actions(), ids=_id)
def test_staff_who_may_only_look_neither_see_nor_run_the_action(client, model_admin, name):
    # given staff who may see the changelist, nothing more, and a row the action would change
    model = model_admin.model
    label = model._meta.label_lower
    assert label in ROWS, f"Add a row for {label} to ROWS so that its action {name!r} is tried."
    row = ROWS[label]()
    viewer = make_user(f"viewer-{name}", staff=True)
    viewer.user_permissions.add(_view_permission(model))
    request = RequestFactory().get("/")
    request.user = viewer
    declared = getattr(model_admin.get_action(name)[0], "allowed_permissions", ())
    assert not any(getattr(model_admin, f"has_{p}_permission")(request) for p in declared), (
        f"{label}.{name} is allowed to whoever may view {label}: give it a permission of its own."
    )
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    client.force_login(viewer)
    before = _state(row)
    # when they look at the list, and post the action anyway
    listed = client.get(url)
    posted = client.post(url, {"action": name, "_selected_action": [row.pk]}, follow=True)
    # then it is not offered, is refused, and nothing changed
    assert listed.status_code == 200
    assert name not in _offered(listed)
    assert posted.status_code == 200
    assert _state(row) == before


@pytest.mark.django_db
@pytest.mark.parametrize(("model_admin", "name"), project_actions(), ids=_id)
def test_a_superuser_is_offered_the_action(admin_client, model_admin, name):
    """The other side of the test above: the changelist does offer the action to whoever may run it."""
    model = model_admin.model
    ROWS[model._meta.label_lower]()
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert name in _offered(admin_client.get(url))


@pytest.mark.django_db
def test_receiving_stock_needs_the_receive_permission_and_it_is_enough(client):
    # given staff with the view and receive permissions of stock items, nothing else
    item = _stock_item()
    receiver = make_user("receiver", staff=True, perms=("inventory.view_stockitem", "inventory.receive_stock"))
    client.force_login(receiver)
    url = reverse("admin:inventory_stockitem_changelist")
    # when
    assert "receive_ten" in _offered(client.get(url))
    response = client.post(url, {"action": "receive_ten", "_selected_action": [item.pk]}, follow=True)
    # then
    assert "Received 10 units of 1 SKUs." in [str(m) for m in response.context["messages"]]
    item.refresh_from_db()
    assert (item.on_hand, item.version) == (11, 2)


@pytest.mark.django_db
def test_staff_who_may_see_stock_cannot_receive_it(client):
    item = _stock_item()
    client.force_login(make_user("looker", staff=True, perms=("inventory.view_stockitem",)))
    url = reverse("admin:inventory_stockitem_changelist")
    client.post(url, {"action": "receive_ten", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert (item.on_hand, item.version) == (1, 1)
