"""Admin for the event log, deliveries and the dead-letter queue.

Events are read-only. Retry and discard call the outbox services and need
the ``outbox.retry_delivery`` permission, not merely staff status.
"""

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from . import breaker, services
from .events import registry
from .models import UNKNOWN_TYPE_HANDLER, DeadLetter, Delivery, HandlerCircuit, OutboxEvent
from .subscriptions import subscriptions


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def pretty_json(value: object) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ("handler", "status", "attempts", "last_error", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class EventTypeFilter(admin.SimpleListFilter):
    """Filter by the registered event types: no DISTINCT over a table of millions."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in registry.names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent]:
        return queryset.filter(type=self.value()) if self.value() else queryset


class HandlerFilter(admin.SimpleListFilter):
    """Filter by the subscribed handlers, from the registry rather than a DISTINCT scan."""

    title = "handler"
    parameter_name = "handler"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        names = {s.name for s in subscriptions.all()} | {UNKNOWN_TYPE_HANDLER}
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        return queryset.filter(handler=self.value()) if self.value() else queryset


class ContextFilter(admin.SimpleListFilter):
    """Filter by context (the handler's queue), from the registry."""

    title = "context"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(queue, queue) for queue in sorted({s.queue for s in subscriptions.all()})]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "version", "aggregate_type", "aggregate_id", "occurred_at", "delivery_summary")
    list_filter = (EventTypeFilter,)
    search_fields = ("=event_id", "=aggregate_id", "=correlation_id", "type")
    readonly_fields = (
        "event_id",
        "type",
        "version",
        "occurred_at",
        "aggregate_type",
        "aggregate_id",
        "correlation_id",
        "causation_id",
        "traceparent",
        "relayed_at",
        "payload_pretty",
    )
    exclude = ("payload",)
    inlines = [DeliveryInline]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description="payload")
    def payload_pretty(self, obj: OutboxEvent) -> str:
        return pretty_json(obj.payload)

    @admin.display(description="deliveries")
    def delivery_summary(self, obj: OutboxEvent) -> str:
        """ "payments done, inventory done, shipping failed x3"."""
        return ", ".join(_describe(d) for d in obj.deliveries.all()) or "-"


def _describe(delivery: Delivery) -> str:
    if delivery.status == Delivery.Status.DONE:
        return f"{delivery.handler} done"
    if delivery.last_error:
        return f"{delivery.handler} {delivery.status} (failed x{delivery.attempts})"
    return f"{delivery.handler} {delivery.status}"


class DeadLetterActions:
    """Retry and discard, shared by the deliveries and dead-letter admins."""

    actions = ["retry", "discard"]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbox.retry_delivery")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_view_permission(request, obj) or self.has_retry_permission(request)

    @admin.action(description="Retry the selected dead deliveries", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        selected = queryset.count()
        count = services.dead_letter_retry(deliveries=queryset)
        self.message_user(request, _retried(count, selected), messages.SUCCESS if count else messages.WARNING)

    @admin.action(description="Discard the selected dead deliveries (kept, marked resolved)", permissions=["retry"])
    def discard(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = services.dead_letter_discard(deliveries=queryset, user=request.user)
        self.message_user(request, f"{count} dead deliveries discarded.", messages.SUCCESS)


def _retried(count: int, selected: int) -> str:
    one = count == 1
    message = (
        f"{count} dead {'delivery' if one else 'deliveries'} sent round again with a fresh set of attempts: "
        f"follow {'it' if one else 'them'} under Deliveries."
    )
    if selected > count:
        message += f" {selected - count} of those selected were not dead, or were discarded, and were left alone."
    return message


@admin.register(Delivery)
class DeliveryAdmin(DeadLetterActions, ReadOnlyAdmin):
    list_display = ("id", "handler", "queue", "status", "attempts", "event_link", "due_at", "finished_at")
    list_filter = ("status", ContextFilter, HandlerFilter)
    search_fields = ("=event__event_id", "=event__aggregate_id", "handler")
    list_select_related = ("event",)
    readonly_fields = (
        "event_link",
        "handler",
        "queue",
        "status",
        "attempts",
        "crashes",
        "redispatches",
        "due_at",
        "ordering_key",
        "created_at",
        "dispatched_at",
        "dispatch_token",
        "started_at",
        "finished_at",
        "resolved_at",
        "resolved_by",
        "last_error_of_attempt",
        "traceback_pre",
    )
    exclude = ("event", "traceback", "last_error")
    show_full_result_count = False

    @admin.display(description="last error")
    def last_error_of_attempt(self, obj: Delivery) -> str:
        """A done delivery keeps the error of the attempt that failed before it: say so."""
        if obj.status == Delivery.Status.DONE and obj.last_error:
            return f"{obj.last_error}  (from an earlier attempt: the last one succeeded)"
        return obj.last_error or "-"

    @admin.display(description="event")
    def event_link(self, obj: Delivery) -> str:
        return format_html('<a href="../../outboxevent/{}/change/">{}</a>', obj.event_id, obj.event)

    @admin.display(description="traceback")
    def traceback_pre(self, obj: Delivery) -> str:
        return format_html("<pre>{}</pre>", obj.traceback or "-")


@admin.register(DeadLetter)
class DeadLetterAdmin(DeadLetterActions, ReadOnlyAdmin):
    list_display = ("id", "handler", "event_type", "attempts", "short_error", "finished_at", "resolved_at")
    list_filter = (HandlerFilter, ContextFilter, ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("=event__event_id", "=event__aggregate_id", "handler", "last_error")
    list_select_related = ("event",)
    readonly_fields = (
        "handler",
        "queue",
        "attempts",
        "crashes",
        "event_type",
        "event_id_display",
        "finished_at",
        "resolved_at",
        "resolved_by",
        "last_error",
        "payload_pretty",
        "traceback_pre",
    )
    exclude = ("event", "traceback")

    @admin.display(description="event type", ordering="event__type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description="event id")
    def event_id_display(self, obj: Delivery) -> str:
        return str(obj.event.event_id)

    @admin.display(description="error")
    def short_error(self, obj: Delivery) -> str:
        return (obj.last_error.splitlines() or [""])[0][:120]

    @admin.display(description="payload")
    def payload_pretty(self, obj: Delivery) -> str:
        return pretty_json(obj.event.payload)

    @admin.display(description="traceback")
    def traceback_pre(self, obj: Delivery) -> str:
        return format_html("<pre>{}</pre>", obj.traceback or "-")


@admin.register(HandlerCircuit)
class HandlerCircuitAdmin(ReadOnlyAdmin):
    """Each handler's circuit breaker and pause switch; pausing and resuming need ``outbox.operate_handler``."""

    list_display = ("handler", "state_shown", "consecutive_failures", "retry_at", "times_opened", "short_error")
    list_filter = ("state", "paused")
    search_fields = ("handler",)
    readonly_fields = (
        "handler",
        "state",
        "paused",
        "paused_at",
        "paused_by",
        "consecutive_failures",
        "opened_at",
        "retry_at",
        "probe_delivery_id",
        "times_opened",
        "last_error",
        "updated_at",
    )
    actions = ["pause", "resume"]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        breaker.circuits_ensure()  # every subscribed handler is listed, closed ones too
        return super().changelist_view(request, extra_context)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbox.operate_handler")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_view_permission(request, obj) or self.has_operate_permission(request)

    @admin.display(description="state", ordering="state")
    def state_shown(self, obj: HandlerCircuit) -> str:
        return f"paused ({obj.get_state_display()})" if obj.paused else obj.get_state_display()

    @admin.display(description="last error")
    def short_error(self, obj: HandlerCircuit) -> str:
        return (obj.last_error.splitlines() or ["-"])[0][:120]

    @admin.action(description="Pause the selected handlers (nothing is dispatched to them)", permissions=["operate"])
    def pause(self, request: HttpRequest, queryset: QuerySet[HandlerCircuit]) -> None:
        names = self._act(request, queryset, breaker.handler_pause, user=request.user)
        self.message_user(request, f"Paused: {', '.join(names) or 'none'}.", messages.SUCCESS)

    @admin.action(description="Resume the selected handlers (and close their circuits)", permissions=["operate"])
    def resume(self, request: HttpRequest, queryset: QuerySet[HandlerCircuit]) -> None:
        names = self._act(request, queryset, breaker.handler_resume)
        self.message_user(request, f"Resumed: {', '.join(names) or 'none'}.", messages.SUCCESS)

    def _act(self, request: HttpRequest, queryset: QuerySet[HandlerCircuit], service, **kwargs) -> list[str]:
        done = []
        for handler in queryset.values_list("handler", flat=True):
            try:
                service(handler=handler, **kwargs)
            except breaker.UnknownHandler as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                done.append(handler)
        return done
