"""Admin for payments: read-only; money moves only through services."""

from django.contrib import admin

from outbox.admin import ReadOnlyAdmin

from .models import Payment, SandboxCharge


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "amount", "currency", "status", "provider_reference", "created_at")
    list_filter = ("status",)
    search_fields = ("=order_id", "provider_reference")


@admin.register(SandboxCharge)
class SandboxChargeAdmin(ReadOnlyAdmin):
    list_display = ("reference", "amount", "currency", "status", "token", "created_at")
    list_filter = ("status",)
    search_fields = ("reference", "idempotency_key")
