"""Admin for shipments: read-only; bookings change only through services.

The sandbox carrier's bookings are shown from its own store (config/routers.py).
"""

from django.contrib import admin

from outbox.admin import ReadOnlyAdmin

from .models import SandboxBooking, Shipment


@admin.register(Shipment)
class ShipmentAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "status", "carrier", "tracking_number", "estimated_delivery", "created_at")
    list_filter = ("status", "carrier")
    search_fields = ("=order_id", "tracking_number")


@admin.register(SandboxBooking)
class SandboxBookingAdmin(ReadOnlyAdmin):
    list_display = ("tracking_number", "carrier", "status", "parcels", "estimated_delivery", "created_at")
    list_filter = ("status",)
    search_fields = ("tracking_number", "idempotency_key")
