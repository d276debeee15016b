"""Admin for notifications: read-only, a record of what each customer was told and whether it went out."""

from django.contrib import admin

from outbox.admin import ReadOnlyAdmin

from .models import Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("kind", "recipient", "order_id", "status", "attempts", "created_at", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("=order_id", "=event_id", "recipient", "=message_id")
    fields = (
        "kind",
        "status",
        "recipient",
        "order_id",
        "event_id",
        "message_id",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
        "sent_at",
        "subject",
        "body",
        "html_body",
    )
    readonly_fields = fields
