"""Admin for orders: filter by status and date, search by id and customer, lines inline, the saga's state,
the event timeline with each event's deliveries and the causal tree; the order as it was at a chosen time
(``?as_of=``, rebuilt from its events); and the saga instances on their own.

Orders change only through services: the one action, cancel, calls ``order_cancel``
and needs the permission to change orders.
"""

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from outbox.admin import ReadOnlyAdmin, causal_tree_html
from outbox.models import Delivery

from . import selectors
from .forms import AsOfForm
from .models import Order, OrderError, OrderLine, OrderSaga
from .services import order_cancel


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = ("sku", "name", "quantity", "unit_price")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class OrderSagaInline(admin.StackedInline):
    model = OrderSaga
    fields = ("payment", "payment_failure", "stock", "short_skus", "shipment", "outcome", "updated_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "status", "total_amount", "currency", "created_at")
    list_filter = ("status", "created_at", "cancel_code")
    date_hierarchy = "created_at"
    search_fields = ("=id", "=correlation_id", "customer__username", "customer__email", "tracking_number")
    list_select_related = ("customer",)
    readonly_fields = (
        "customer",
        "customer_email",
        "status",
        "payment_status",
        "inventory_status",
        "total_amount",
        "currency",
        "shipping_to",
        "correlation_id",
        "cancel_code",
        "cancel_reason",
        "carrier",
        "tracking_number",
        "estimated_delivery",
        "created_at",
        "confirmed_at",
        "cancelled_at",
        "shipped_at",
        "timeline",
        "trace",
    )
    exclude = ("payment_token", "shipping_address")  # the address shows as its lines (shipping_to)
    inlines = [OrderLineInline, OrderSagaInline]
    actions = ["cancel_orders"]

    @admin.display(description="payment")
    def payment_status(self, obj: Order) -> str:
        return selectors.order_payment_status(order=obj)

    @admin.display(description="stock")
    def inventory_status(self, obj: Order) -> str:
        return selectors.order_inventory_status(order=obj)

    @admin.display(description="shipping address")
    def shipping_to(self, obj: Order) -> str:
        """The address as it goes on the parcel, a line each (the stored JSON, read)."""
        return _address_lines(obj.shipping_address)

    @admin.display(description="events (in causal order, with the handlers each was delivered to)")
    def timeline(self, obj: Order) -> str:
        timeline = selectors.order_timeline(order_id=obj.id)
        if not timeline:
            return "-"
        rows = format_html_join("\n", "<tr>{}</tr>", ((_event_cells(entry),) for entry in timeline))
        return format_html(
            '<table class="order-timeline"><thead><tr><th>event</th><th>occurred at (UTC)</th><th>type</th>'
            "<th>caused by</th><th>deliveries</th><th>the order then</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="causal tree (each event under the one that caused it, with its handlers' runs)")
    def trace(self, obj: Order) -> str:
        """As ``manage.py outbox_trace <order id>`` prints it; a hop's time runs from the event's writing to done."""
        return causal_tree_html(obj.correlation_id)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """The order's page; with ``?as_of=<time>``, a read-only panel of the order as it was at that time."""
        extra_context = {**(extra_context or {}), **self._as_of_context(request, object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _as_of_context(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        form = AsOfForm(request.GET if "as_of" in request.GET else None)
        if not form.is_valid():
            return {"as_of_form": form}
        order = self.get_object(request, unquote(object_id))
        if order is None or not self.has_view_or_change_permission(request, order):
            return {"as_of_form": form}  # the page itself says why
        at = form.cleaned_data["as_of"]
        try:
            snapshot = selectors.order_as_of(order=order, at=at)
        except selectors.HistoryUnreadable as unreadable:
            form.add_error("as_of", str(unreadable))
            return {"as_of_form": form}
        return {"as_of_form": form, "as_of": at, "as_of_snapshot": snapshot}

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.action(description="Cancel the selected orders (staff)", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        cancelled = 0
        for order in queryset:
            try:
                order_cancel(order_id=order.id, reason="Cancelled by staff.", by_user_id=request.user.pk)
            except OrderError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, f"{cancelled} order{'s' if cancelled != 1 else ''} cancelled.", messages.SUCCESS)


def _event_cells(entry: selectors.TimelineEntry) -> str:
    event = entry.event
    return format_html(
        '<td><a href="{}">#{}</a></td><td>{}</td><td><b>{}</b> v{}</td><td>{}</td><td>{}</td>'
        '<td><a href="?{}">as of this event</a></td>',
        reverse("admin:outbox_outboxevent_change", args=[event.id]),
        event.id,
        event.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
        event.type,
        event.version,
        entry.cause_type or event.causation_id or "-",
        _deliveries(entry.deliveries, entry.holds),
        urlencode({"as_of": event.occurred_at.isoformat()}),
    )


def _address_lines(address: dict | None) -> str:
    """``{"name": ..., "line1": ..., "city": ...}`` as the lines of an address; each value escaped."""
    if not address:
        return "-"
    place = " ".join(str(address[key]) for key in ("postal_code", "city") if address.get(key))
    lines = [address.get("name"), address.get("line1"), address.get("line2"), place, address.get("country")]
    return format_html(
        '<address class="shipping-address">{}</address>',
        format_html_join("", '<span class="line">{}</span>', ((line,) for line in lines if line)),
    )


def _deliveries(deliveries: list[Delivery], holds: dict[int, Delivery]) -> str:
    """A list, a delivery an item. (Not joined with "<br>": format_html_join escapes its separator.)"""
    if not deliveries:
        return "-"
    return format_html(
        '<ul class="deliveries">{}</ul>',
        format_html_join(
            "",
            '<li class="{}"><a href="{}">{}</a>: {} ({} attempt{}){}</li>',
            (
                (
                    d.status,
                    reverse("admin:outbox_delivery_change", args=[d.id]),
                    d.handler,
                    d.status,
                    d.attempts,
                    "" if d.attempts == 1 else "s",
                    _held(holds.get(d.id)),
                )
                for d in deliveries
            ),
        ),
    )


def _held(holder: Delivery | None) -> str:
    """What a delivery of an ordered handler waits for, after its status: ", held by #12 (dead)"."""
    if holder is None:
        return ""
    link = reverse("admin:outbox_delivery_change", args=[holder.id])
    verb = "held by" if holder.status == Delivery.Status.DEAD else "waiting for"
    return format_html(', {} <a href="{}">#{}</a> ({})', verb, link, holder.id, holder.status)


@admin.register(OrderSaga)
class OrderSagaAdmin(ReadOnlyAdmin):
    """Each order's saga: what it has learnt from payments, inventory and shipping, and what it decided."""

    list_display = ("order", "payment", "stock", "outcome", "updated_at")
    list_filter = ("outcome", "payment", "stock")
    search_fields = ("=order__id",)
    list_select_related = ("order",)
    readonly_fields = (
        "order",
        "payment",
        "payment_failure",
        "stock",
        "short_skus",
        "shipment",
        "outcome",
        "updated_at",
    )
