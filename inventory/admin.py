"""Admin for the catalogue, stock (with its history) and reservations. Stock changes only through services.

Receiving stock (the one action) needs ``inventory.receive_stock``: seeing stock does not let anyone write it.
"""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from outbox.admin import ReadOnlyAdmin

from .models import Product, Reservation, ReservationLine, StockItem
from .selectors import stock_history
from .services import stock_receive

HISTORY_LIMIT = 100


@admin.register(Product)
class ProductAdmin(ReadOnlyAdmin):
    list_display = ("sku", "name", "price", "currency")
    search_fields = ("sku", "name")


@admin.register(StockItem)
class StockItemAdmin(ReadOnlyAdmin):
    list_display = ("sku", "on_hand", "reserved", "available", "version", "updated_at")
    search_fields = ("sku",)
    fields = ("product", "sku", "on_hand", "reserved", "available", "version", "position", "updated_at", "history")
    readonly_fields = fields
    actions = ["receive_ten"]

    def has_receive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.receive_stock")

    @admin.action(description="Receive 10 units of each selected SKU", permissions=["receive"])
    def receive_ten(self, request: HttpRequest, queryset: QuerySet[StockItem]) -> None:
        for item in queryset:
            stock_receive(sku=item.sku, quantity=10)
        self.message_user(request, f"Received 10 units of {queryset.count()} SKUs.")

    @admin.display(description=f"history (the stream's latest {HISTORY_LIMIT} events, newest first)")
    def history(self, obj: StockItem) -> str:
        movements = stock_history(sku=obj.sku, limit=HISTORY_LIMIT)
        if not movements:
            return "-"
        rows = format_html_join(
            "\n",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:outbox_outboxevent_change", args=[m.position]),
                    m.position,
                    m.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f UTC"),
                    m.type.removeprefix("inventory."),
                    m.quantity,
                    m.order_id or "-",
                    m.on_hand,
                    m.reserved,
                )
                for m in movements
            ),
        )
        return format_html(
            "<table><thead><tr><th>event</th><th>occurred at</th><th>what</th><th>units</th><th>order</th>"
            "<th>on hand after</th><th>reserved after</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )


class ReservationLineInline(admin.TabularInline):
    model = ReservationLine
    fields = ("sku", "quantity")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "status", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("=order_id",)
    inlines = [ReservationLineInline]
