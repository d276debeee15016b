"""Admin for orders: filter by status, lines inline, the saga's state and the event timeline.

Orders change only through services: the one action, cancel, calls ``order_cancel``.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from outbox.admin import ReadOnlyAdmin

from .models import Order, OrderError, OrderLine, OrderSaga
from .selectors import order_timeline
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
    list_filter = ("status", "cancel_code")
    search_fields = ("=id", "=correlation_id", "customer__username", "tracking_number")
    readonly_fields = (
        "customer",
        "customer_email",
        "status",
        "total_amount",
        "currency",
        "shipping_address",
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
    )
    exclude = ("payment_token",)
    inlines = [OrderLineInline, OrderSagaInline]
    actions = ["cancel_orders"]

    @admin.display(description="events")
    def timeline(self, obj: Order) -> str:
        rows = ((e.id, e.occurred_at, e.type, e.causation_id or "-") for e in order_timeline(order_id=obj.id))
        return format_html_join("\n", "<div>#{} {} <b>{}</b> caused by {}</div>", rows) or "-"

    @admin.action(description="Cancel the selected orders (staff)")
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset:
            try:
                order_cancel(order_id=order.id, reason="Cancelled by staff.", code=Order.CancelCode.STAFF)
            except OrderError as exc:
                self.message_user(request, str(exc), messages.WARNING)
