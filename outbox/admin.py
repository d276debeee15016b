"""Admin for the event log (each event's page shows its workflow's causal tree), deliveries and the dead-letter
queue.

Events are read-only. Retry and discard call the outbox services and need
the ``outbox.retry_delivery`` permission, not merely staff status. Dead
letters can also be seen, retried and discarded by cause (Grouped by cause).
"""

import json
from collections.abc import Sequence
from uuid import UUID

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from . import breaker, selectors, services
from .events import registry
from .forms import DeadLetterGroupActionForm
from .models import (
    UNKNOWN_TYPE_HANDLER,
    DeadLetter,
    Delivery,
    DeliveryFailure,
    HandlerCircuit,
    OutboxEvent,
    ReplayProgress,
)
from .selectors import DeadLetterGroup
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


TREE_SHOWN = 500  # events of a workflow on an admin page; outbox_trace prints them all


def causal_tree_html(correlation_id: UUID, *, marked: UUID | None = None) -> str:
    """A workflow's causal tree (``selectors.causal_tree``) for an admin page, as ``outbox_trace`` prints it.

    Each event is indented under its cause, with each handler's run: status,
    attempts, the hop's time, the last failed attempt's error. A flat list of
    rows, not nested templates: a deep workflow cannot exhaust the stack.
    """
    roots = selectors.causal_tree(correlation_id=correlation_id, limit=TREE_SHOWN)
    rows = [(depth, node) for root in roots for depth, node in root.walk()]
    if not rows:
        return "-"
    size = selectors.workflow_size(correlation_id=correlation_id) if len(rows) == TREE_SHOWN else len(rows)
    context = {"rows": rows, "marked": marked, "size": size, "correlation_id": correlation_id}
    return render_to_string("admin/outbox/causal_tree.html", context)


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ("handler", "status", "attempts", "last_error", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class DeliveryFailureInline(admin.TabularInline):
    """Each failed attempt of the delivery, read-only: the runner writes them."""

    model = DeliveryFailure
    fields = ("attempt", "failed_at", "cause", "counted", "error_type", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "failed attempt"

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        """Whoever may see the delivery sees its failed attempts: they need no permission of their own."""
        return request.user.has_perm("outbox.view_delivery") or request.user.has_perm("outbox.retry_delivery")


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


GROUPS_OFFERED = 20  # in the cause filter's list
GROUPS_SHOWN = 200  # on the grouped page, largest first


class DeadLetterGroupFilter(admin.SimpleListFilter):
    """The letters of one group (``?group=<id>``), as the grouped view links to them: the largest groups are offered."""

    title = "cause"
    parameter_name = "group"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        largest = selectors.dead_letter_groups()[:GROUPS_OFFERED]
        chosen = self.value()
        if chosen and all(group.id != chosen for group in largest):
            largest += [group for group in [selectors.dead_letter_group(group_id=chosen)] if group]
        return [
            (group.id, f"{group.handler}: {group.error_type or 'cause not recorded'} ({group.count})")
            for group in largest
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        chosen = self.value()
        if not chosen:
            return queryset
        group = selectors.dead_letter_group(group_id=chosen)
        if group is None:
            return queryset.none()
        return queryset.filter(
            handler=group.handler,
            error_type=group.error_type,
            error_pattern=group.error_pattern,
            resolved_at__isnull=True,
        )


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
        "workflow",
    )
    exclude = ("payload",)
    inlines = [DeliveryInline]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description="payload")
    def payload_pretty(self, obj: OutboxEvent) -> str:
        return pretty_json(obj.payload)

    @admin.display(description="workflow (its causal tree)")
    def workflow(self, obj: OutboxEvent) -> str:
        return causal_tree_html(obj.correlation_id, marked=obj.event_id)

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


class DeadLetterActions(admin.ModelAdmin):
    """Retry and discard, shared by the deliveries and dead-letter admins (a mixin: registered only with them)."""

    actions: Sequence[str] = ["retry", "discard"]

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


class DeadLetterGroupViews(DeadLetterActions):
    """The dead letters grouped by cause, on a page of their own under the dead-letter admin (a mixin)."""

    def get_urls(self) -> list[URLPattern]:
        groups = path("groups/", self.admin_site.admin_view(self.groups_view), name="outbox_deadletter_groups")
        return [groups, *super().get_urls()]

    def groups_view(self, request: HttpRequest) -> HttpResponse:
        """Dead letters grouped by cause; a POST retries or discards (the oldest ``limit`` of) one group."""
        if request.method == "POST":
            return self._act_on_group(request)
        if not self.has_view_permission(request):
            raise PermissionDenied
        groups = selectors.dead_letter_groups()
        context = {
            **self.admin_site.each_context(request),
            "title": "Dead letters grouped by cause",
            "opts": self.opts,
            "groups": groups[:GROUPS_SHOWN],
            "group_count": groups.count(),
            "shown": GROUPS_SHOWN,
            "can_act": self.has_retry_permission(request),
        }
        return TemplateResponse(request, "admin/outbox/deadletter/groups.html", context)

    def _act_on_group(self, request: HttpRequest) -> HttpResponse:
        if not self.has_retry_permission(request):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:outbox_deadletter_groups"))
        form = DeadLetterGroupActionForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(f"{name}: {' '.join(map(str, problems))}" for name, problems in form.errors.items())
            self.message_user(request, f"Nothing was done: {errors}", messages.ERROR)
            return back
        group = selectors.dead_letter_group(group_id=form.cleaned_data["group"])
        if group is None:
            self.message_user(request, "That group has no dead letters any more: nothing was done.", messages.WARNING)
            return back
        action, limit = form.cleaned_data["action"], form.cleaned_data["limit"]
        if action == "retry":
            count = services.dead_letter_group_retry(group=group, limit=limit)
        else:
            count = services.dead_letter_group_discard(group=group, limit=limit, user=request.user)
        self.message_user(request, _group_outcome(group, action, count), messages.SUCCESS)
        return back


def _group_outcome(group: DeadLetterGroup, action: str, count: int) -> str:
    remaining = selectors.dead_letters_of_group(group).count()
    done = {"retry": "Retried", "discard": "Discarded"}[action]
    what = {"retry": "sent round again with a fresh set of attempts", "discard": "kept, marked resolved"}[action]
    return (
        f"{done} {count:,} of {count + remaining:,} dead letters of {group.handler} "
        f"({group.error_type or 'cause not recorded'}): {what}; {remaining:,} remain."
    )


class DeliveryChangeList(ChangeList):
    """A page of deliveries, with what each held one waits for found in one query for the page, not one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        holds = selectors.deliveries_held(delivery_ids=[d.id for d in self.result_list])
        for delivery in self.result_list:
            delivery.waits_for_delivery = holds.get(delivery.id)


def _waits_for(holder: Delivery | None) -> str:
    if holder is None:
        return "-"
    link = reverse("admin:outbox_delivery_change", args=[holder.id])
    if holder.status == Delivery.Status.DEAD:
        error = (holder.last_error.splitlines() or [""])[0][:120]
        return format_html('held by delivery <a href="{}">#{}</a> (dead: {})', link, holder.id, error)
    return format_html('waiting for delivery <a href="{}">#{}</a> ({})', link, holder.id, holder.status)


@admin.register(Delivery)
class DeliveryAdmin(DeadLetterActions, ReadOnlyAdmin):
    list_display = ("id", "handler", "queue", "status", "waits_for", "attempts", "event_link", "due_at", "finished_at")
    list_filter = ("status", ContextFilter, HandlerFilter)
    search_fields = ("=event__event_id", "=event__aggregate_id", "handler")
    list_select_related = ("event",)
    readonly_fields = (
        "event_link",
        "handler",
        "queue",
        "status",
        "waits_for",
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
    inlines = [DeliveryFailureInline]
    show_full_result_count = False

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return DeliveryChangeList

    @admin.display(description="waits for")
    def waits_for(self, obj: Delivery) -> str:
        """For a pending delivery of an ordered handler: the earlier delivery of its aggregate it waits for."""
        if not hasattr(obj, "waits_for_delivery"):  # its own page, not a list's
            obj.waits_for_delivery = selectors.deliveries_held(delivery_ids=[obj.id]).get(obj.id)
        return _waits_for(obj.waits_for_delivery)

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
class DeadLetterAdmin(DeadLetterGroupViews, DeadLetterActions, ReadOnlyAdmin):
    list_display = ("id", "handler", "event_type", "attempts", "short_error", "finished_at", "resolved_at")
    list_filter = (HandlerFilter, ContextFilter, DeadLetterGroupFilter, ("resolved_at", admin.EmptyFieldListFilter))
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
    inlines = [DeliveryFailureInline]

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


@admin.register(ReplayProgress)
class ReplayProgressAdmin(ReadOnlyAdmin):
    """How far each replay (``manage.py outbox_replay``) got; run by the command, never from here."""

    list_display = (
        "handler",
        "scope",
        "queue",
        "cursor",
        "last_event",
        "scanned",
        "created",
        "started_at",
        "finished_at",
    )
    list_filter = ("handler",)
    search_fields = ("handler", "scope")
    readonly_fields = (*list_display, "updated_at")
