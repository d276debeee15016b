"""Admin for shipments: read-only; bookings change only through services."""

from django.contrib import admin

from outbox.admin import ReadOnlyAdmin

from .models import Shipment


@admin.register(Shipment)
class ShipmentAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "status", "carrier", "tracking_number", "estimated_delivery", "created_at")
    list_filter = ("status", "carrier")
    search_fields = ("=order_id", "tracking_number")
