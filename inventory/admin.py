"""Admin for the catalogue, stock and reservations. Stock changes only through services."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from outbox.admin import ReadOnlyAdmin

from .models import Product, Reservation, ReservationLine, StockItem
from .services import stock_receive


@admin.register(Product)
class ProductAdmin(ReadOnlyAdmin):
    list_display = ("sku", "name", "price", "currency")
    search_fields = ("sku", "name")


@admin.register(StockItem)
class StockItemAdmin(ReadOnlyAdmin):
    list_display = ("sku", "on_hand", "reserved", "available", "updated_at")
    search_fields = ("sku",)
    actions = ["receive_ten"]

    @admin.action(description="Receive 10 units of each selected SKU")
    def receive_ten(self, request: HttpRequest, queryset: QuerySet[StockItem]) -> None:
        for item in queryset:
            stock_receive(sku=item.sku, quantity=10)
        self.message_user(request, f"Received 10 units of {queryset.count()} SKUs.")


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
