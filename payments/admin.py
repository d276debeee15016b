"""Admin for payments: read-only; money moves only through services.

The sandbox provider's ledger and call counts are shown from its own store (config/routers.py).
"""

from django.contrib import admin

from outbox.admin import ReadOnlyAdmin

from .models import Payment, SandboxCall, SandboxCharge


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "amount", "currency", "status", "provider_reference", "created_at")
    list_filter = ("status",)
    search_fields = ("=order_id", "provider_reference", "void_reference")


@admin.register(SandboxCharge)
class SandboxChargeAdmin(ReadOnlyAdmin):
    list_display = ("reference", "amount", "currency", "status", "card", "created_at")
    list_filter = ("status",)
    search_fields = ("reference", "idempotency_key", "refund_reference", "void_reference")


@admin.register(SandboxCall)
class SandboxCallAdmin(ReadOnlyAdmin):
    list_display = ("idempotency_key", "calls", "last_call_at")
    search_fields = ("idempotency_key",)
