"""Admin for sent notifications: read-only, a record of what each customer was told."""

from django.contrib import admin

from outbox.admin import ReadOnlyAdmin

from .models import Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("kind", "recipient", "order_id", "status", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("=order_id", "=event_id", "recipient")
