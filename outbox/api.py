"""The outbox over REST: the dead-letter queue (reading it needs ``outbox.view_delivery``; retry and discard need
``outbox.retry_delivery``) and a search of the event log (``outbox.view_outboxevent``).

One API class per operation; each parses, calls one outbox selector or
service, and renders.

The outbox brings none of a project's API plumbing: its lists page with DRF's
``DEFAULT_PAGINATION_CLASS``, its errors are DRF exceptions that the
configured ``EXCEPTION_HANDLER`` renders, and the schema documents its error
bodies as the project does when ``OUTBOX_API_ERROR_RESPONSES`` names the
project's function for them (:func:`error_responses`).
"""

from http import HTTPStatus
from typing import Any, Literal, cast

from django.conf import settings
from django.utils.module_loading import import_string
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import BasePagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from . import selectors, services
from .models import Delivery
from .selectors import DeadLetterGroup
from .serializers import (
    AS_OF_FORMAT,
    AwareDateTimeField,
    CausedEventsSerializer,
    DeliverySummarySerializer,
    EventEnvelopeSerializer,
)


class Conflict(APIException):
    """409: the dead letter's state forbids the action (it is no longer dead, or was discarded)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


def has_perm(*perms: str, message: str) -> type[BasePermission]:
    """A permission class that requires one of ``perms`` (a superuser has all); ``message`` is the 403's detail.

    The permissions are the admin's: staff status alone grants none of them.
    """

    refusal = message

    class HasPerm(BasePermission):
        message = refusal

        def has_permission(self, request: Request, view: object) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and any(user.has_perm(perm) for perm in perms))

    return HasPerm


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The schema's error responses for these status codes, for ``extend_schema(responses=...)``.

    The project's own function when ``settings.OUTBOX_API_ERROR_RESPONSES`` names one (a dotted
    path to a function taking the codes, as this one does), so the outbox's operations document
    the project's error body; otherwise a description of each code.
    """
    project_responses = getattr(settings, "OUTBOX_API_ERROR_RESPONSES", "")
    if project_responses:
        return import_string(project_responses)(*codes)
    return {code: OpenApiResponse(description=HTTPStatus(code).phrase) for code in codes}


def paginated_response(
    *, request: Request, view: Any, queryset: Any, serializer_class: type[serializers.Serializer]
) -> Response:
    """One page of ``queryset`` through ``view.pagination_class``."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


# The project's paging (DRF's DEFAULT_PAGINATION_CLASS), set on each list view so that the schema knows it.
# api_settings imports the class the setting names (the stubs type the setting's raw value).
Pagination = cast("type[BasePagination]", api_settings.DEFAULT_PAGINATION_CLASS)

# The permissions the admin asks for; staff status alone grants none of them.
CanViewDeadLetters = has_perm(
    "outbox.view_delivery",
    "outbox.retry_delivery",  # whoever may retry them sees them, as in the admin
    message="Reading dead letters needs the outbox.view_delivery permission.",
)
CanRetryDeliveries = has_perm(
    "outbox.retry_delivery", message="Retrying dead deliveries needs the outbox.retry_delivery permission."
)
CanDiscardDeliveries = has_perm(
    "outbox.retry_delivery", message="Discarding dead deliveries needs the outbox.retry_delivery permission."
)
CanViewEvents = has_perm(
    "outbox.view_outboxevent", message="Searching the event log needs the outbox.view_outboxevent permission."
)
PAGE_AND_FORMAT = {"page", "page_size", api_settings.URL_FORMAT_OVERRIDE}
MAX_ID = 2**63 - 1  # the largest bigint: an id past it names no row
DELIVERY_ID = OpenApiParameter("delivery_id", int, OpenApiParameter.PATH, description="The delivery's id.")
GROUP_ID = OpenApiParameter(
    "group_id",
    str,
    OpenApiParameter.PATH,
    description="The group's `id`, as `GET /api/outbox/dead-letter-groups/` lists it (12 hex digits).",
)


class DeadLetterListApi(APIView):
    """Dead deliveries not yet retried or discarded, oldest first."""

    permission_classes = [CanViewDeadLetters]
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        handler = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            help_text="Only this handler's, e.g. `payments.authorise_payment` (blank: every handler's).",
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        handler = serializers.CharField()
        queue = serializers.CharField()
        attempts = serializers.IntegerField()
        last_error = serializers.CharField()
        traceback = serializers.CharField()
        event = EventEnvelopeSerializer()
        finished_at = serializers.DateTimeField(allow_null=True, help_text="When it died.")

        class Meta:
            ref_name = "DeadLetter"

    @extend_schema(
        operation_id="outbox_dead_letters_list", parameters=[FilterSerializer], responses=OutputSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = selectors.dead_letters(handler=filters.validated_data.get("handler"))
        return paginated_response(request=request, view=self, queryset=queryset, serializer_class=self.OutputSerializer)


class DeadLetterRetryApi(APIView):
    """Send a dead delivery round again with a fresh set of attempts (after its cause is mended)."""

    permission_classes = [CanRetryDeliveries]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        handler = serializers.CharField()
        status = serializers.ChoiceField(choices=Delivery.Status.choices, help_text="`pending`: it is queued again.")
        detail = serializers.CharField()

        class Meta:
            ref_name = "DeadLetterRetried"

    @extend_schema(
        operation_id="outbox_dead_letters_retry",
        request=None,
        parameters=[DELIVERY_ID],
        responses={
            202: OpenApiResponse(OutputSerializer, description="Queued for another attempt."),
            **error_responses(404, 409),
        },
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = _delivery(delivery_id)
        if not services.dead_letter_retry(deliveries=Delivery.objects.filter(id=delivery.id)):
            raise Conflict(_why_not(_delivery(delivery_id), "retried"))
        delivery.refresh_from_db()
        detail = f"Delivery {delivery.id} to {delivery.handler} is queued for another attempt."
        body = {"id": delivery.id, "handler": delivery.handler, "status": delivery.status, "detail": detail}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class DeadLetterDiscardApi(APIView):
    """Mark a dead delivery resolved without running it: it is kept, with who discarded it and when.

    For an ordered handler, the later events of its aggregate that it held back go on at once.
    """

    permission_classes = [CanDiscardDeliveries]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        handler = serializers.CharField()
        status = serializers.ChoiceField(choices=Delivery.Status.choices, help_text="Still `dead`: it is kept.")
        resolved_at = serializers.DateTimeField(help_text="When it was discarded.")
        resolved_by = serializers.CharField(help_text="The username of who discarded it.")
        detail = serializers.CharField()

        class Meta:
            ref_name = "DeadLetterDiscarded"

    @extend_schema(
        operation_id="outbox_dead_letters_discard",
        request=None,
        parameters=[DELIVERY_ID],
        responses={200: OpenApiResponse(OutputSerializer, description="Discarded."), **error_responses(404, 409)},
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = _delivery(delivery_id)
        if not services.dead_letter_discard(deliveries=Delivery.objects.filter(id=delivery.id), user=request.user):
            raise Conflict(_why_not(_delivery(delivery_id), "discarded"))
        delivery.refresh_from_db()
        body = {
            "id": delivery.id,
            "handler": delivery.handler,
            "status": delivery.status,
            "resolved_at": delivery.resolved_at,
            "resolved_by": request.user.get_username(),
            "detail": f"Delivery {delivery.id} to {delivery.handler} is discarded: kept, marked resolved.",
        }
        return Response(self.OutputSerializer(body).data)


class DeadLetterGroupSerializer(serializers.Serializer):
    """Dead letters of one handler that failed the same way."""

    class ExampleSerializer(serializers.Serializer):
        delivery_id = serializers.IntegerField(source="example_id")
        last_error = serializers.CharField(source="example_error")
        traceback = serializers.CharField(source="example_traceback")

        class Meta:
            ref_name = "DeadLetterGroupExample"

    id = serializers.CharField(
        help_text="Names the group in `.../dead-letter-groups/{group_id}/retry/` and `discard/`."
    )
    handler = serializers.CharField()
    error_type = serializers.CharField(
        help_text="The exception's class as `module.Qualname` (builtins bare, e.g. `ValueError`), or what the outbox "
        "recorded for a failure no handler raised: `outbox.WorkerLost`, `outbox.HandlerNotSubscribed`, "
        "`outbox.UnknownEventType`, `outbox.events.EventDecodeError`. Empty for letters older than causes."
    )
    error_pattern = serializers.CharField(
        help_text="The error's first line with what varies masked: `<uuid>`, `<n>` (numbers), `<str>` (quoted values)."
    )
    count = serializers.IntegerField(help_text="Dead letters in the group, not yet retried or discarded.")
    first_seen = serializers.DateTimeField(allow_null=True, help_text="When the oldest died.")
    last_seen = serializers.DateTimeField(allow_null=True, help_text="When the latest died.")
    example = ExampleSerializer(source="*", help_text="The latest letter of the group.")

    class Meta:
        ref_name = "DeadLetterGroup"


class DeadLetterGroupListApi(APIView):
    """Dead letters grouped by handler and cause (exception type and masked message), largest group first."""

    permission_classes = [CanViewDeadLetters]
    pagination_class = Pagination
    FilterSerializer = DeadLetterListApi.FilterSerializer

    @extend_schema(
        operation_id="outbox_dead_letter_groups_list",
        parameters=[FilterSerializer],
        responses=DeadLetterGroupSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        groups = selectors.dead_letter_groups(handler=filters.validated_data.get("handler"))
        return paginated_response(
            request=request, view=self, queryset=groups, serializer_class=DeadLetterGroupSerializer
        )


class WholeNumberField(serializers.IntegerField):
    """An integer as JSON writes one: ``50``; never ``"50"``, ``50.0`` or ``true``, which DRF would take."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class GroupLimitSerializer(serializers.Serializer):
    """An optional body: ``{"limit": 50}``. Anything else in it is refused, so a misspelt limit never means "all"."""

    limit = WholeNumberField(
        required=False,
        min_value=1,
        help_text="Only this many, the oldest first (all when absent): try a fix on a few before the rest.",
        error_messages={
            "invalid": 'Give the limit as a whole number of 1 or more, e.g. {{"limit": 50}}, or leave it out for all.',
            "min_value": "The limit is at least 1; leave it out for all.",
        },
    )

    class Meta:
        ref_name = "DeadLetterGroupLimit"

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: ['Unknown field: the body takes only "limit".'] for name in unknown}
            )
        return attrs


class GroupLimitSchema(OpenApiSerializerExtension):
    """The schema says what the body refuses: any field but ``limit`` (``additionalProperties: false``)."""

    target_class = GroupLimitSerializer

    def map_serializer(self, auto_schema: Any, direction: Literal["request", "response"]) -> dict:
        return {**super().map_serializer(auto_schema, direction), "additionalProperties": False}


class DeadLetterGroupRetryApi(APIView):
    """Retry a group's dead letters, oldest first, with a fresh set of attempts: all of them, or `limit`."""

    permission_classes = [CanRetryDeliveries]

    class OutputSerializer(serializers.Serializer):
        group = serializers.CharField(source="group.id")
        handler = serializers.CharField(source="group.handler")
        retried = serializers.IntegerField(help_text="Queued again now.")
        remaining = serializers.IntegerField(help_text="Still dead in the group.")
        detail = serializers.CharField()

        class Meta:
            ref_name = "DeadLetterGroupRetried"

    @extend_schema(
        operation_id="outbox_dead_letter_groups_retry",
        request=GroupLimitSerializer,
        parameters=[GROUP_ID],
        responses={
            202: OpenApiResponse(OutputSerializer, description="Queued for another attempt."),
            **error_responses(404),
        },
    )
    def post(self, request: Request, group_id: str) -> Response:
        limit = _limit(request)
        group = _group(group_id)
        retried = services.dead_letter_group_retry(group=group, limit=limit)
        body = _group_outcome(group, "retried", retried, "queued for another attempt")
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class DeadLetterGroupDiscardApi(APIView):
    """Discard a group's dead letters, oldest first: all of them, or `limit`. They are kept, marked resolved."""

    permission_classes = [CanDiscardDeliveries]

    class OutputSerializer(serializers.Serializer):
        group = serializers.CharField(source="group.id")
        handler = serializers.CharField(source="group.handler")
        discarded = serializers.IntegerField(help_text="Marked resolved now.")
        remaining = serializers.IntegerField(help_text="Still dead in the group.")
        detail = serializers.CharField()

        class Meta:
            ref_name = "DeadLetterGroupDiscarded"

    @extend_schema(
        operation_id="outbox_dead_letter_groups_discard",
        request=GroupLimitSerializer,
        parameters=[GROUP_ID],
        responses={200: OpenApiResponse(OutputSerializer, description="Discarded."), **error_responses(404)},
    )
    def post(self, request: Request, group_id: str) -> Response:
        limit = _limit(request)
        group = _group(group_id)
        discarded = services.dead_letter_group_discard(group=group, limit=limit, user=request.user)
        return Response(
            self.OutputSerializer(_group_outcome(group, "discarded", discarded, "kept, marked resolved")).data
        )


def _limit(request: Request) -> int | None:
    serializer = GroupLimitSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data.get("limit")


def _group(group_id: str) -> DeadLetterGroup:
    group = selectors.dead_letter_group(group_id=group_id)
    if group is None:
        raise NotFound(
            f"There is no dead-letter group {group_id}: none of its letters is dead any more, or the id is wrong "
            "(GET /api/outbox/dead-letter-groups/ lists them)."
        )
    return group


def _group_outcome(group: DeadLetterGroup, done: str, count: int, meaning: str) -> dict:
    remaining = selectors.dead_letters_of_group(group).count()
    detail = (
        f"{done.capitalize()} {count:,} of {count + remaining:,} dead letters of {group.handler} "
        f"({group.error_type or 'cause not recorded'}), {meaning}; {remaining:,} remain."
    )
    return {"group": group, done: count, "remaining": remaining, "detail": detail}


def _delivery(delivery_id: int) -> Delivery:
    delivery = Delivery.objects.filter(id=delivery_id).first() if delivery_id <= MAX_ID else None
    if delivery is None:
        raise NotFound(f"There is no delivery {delivery_id}.")
    return delivery


def _why_not(delivery: Delivery, done: str) -> str:
    """Why a dead-letter action changed nothing: ``done`` is "retried" or "discarded"."""
    if delivery.status != Delivery.Status.DEAD:
        return f"Delivery {delivery.id} is {delivery.status}, not dead: only dead deliveries can be {done}."
    return (
        f"Delivery {delivery.id} was discarded at {delivery.resolved_at:%Y-%m-%d %H:%M:%S} UTC "
        f"and is kept only as a record; it cannot be {done}."
    )


class EventListApi(APIView):
    """Search the event log: the events that match every filter given, oldest first.

    Each comes with its deliveries and the events it caused (`children`): with
    `causation_id`, the edges of its workflow's causal tree. Filter by
    `correlation_id`, or by `aggregate_type` with `aggregate_id`, to read one
    workflow or one aggregate's stream quickly; `type` and the time span alone
    read the whole log.
    """

    permission_classes = [CanViewEvents]
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        type = serializers.CharField(
            required=False,
            min_length=1,
            max_length=200,
            help_text="Only events of this type, e.g. `orders.OrderConfirmed`.",
        )
        correlation_id = serializers.UUIDField(
            required=False, help_text="Only this workflow's events (an order's whole life is one workflow)."
        )
        aggregate_type = serializers.CharField(
            required=False,
            min_length=1,
            max_length=100,
            help_text="Only events of this kind of aggregate, e.g. `orders.Order`.",
        )
        aggregate_id = serializers.CharField(
            required=False,
            min_length=1,
            max_length=100,
            help_text="Only events of the aggregate with this id (an order's id, a SKU).",
        )
        since = AwareDateTimeField(
            required=False, help_text=f"Only events that occurred at or after this time: {AS_OF_FORMAT}."
        )
        until = AwareDateTimeField(
            required=False, help_text=f"Only events that occurred before this time: {AS_OF_FORMAT}."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            """Refuse a parameter no filter has, or a blank one: neither may quietly answer the whole log."""
            known = f"{', '.join(self.fields)} (and page, page_size)"
            errors = {
                name: [f"Unknown filter: the filters are {known}."]
                for name in sorted(set(self.initial_data) - set(self.fields) - PAGE_AND_FORMAT)
            }
            for name in self.fields:
                if self.initial_data.get(name) == "":  # DRF skips a blank optional field as if it were absent
                    errors[name] = ["Blank: give a value, or leave the filter out."]
            if errors:
                raise serializers.ValidationError(errors)
            if "since" in attrs and "until" in attrs and attrs["since"] >= attrs["until"]:
                raise serializers.ValidationError({"until": ["`until` must be later than `since`: the span is empty."]})
            return attrs

    class OutputSerializer(CausedEventsSerializer):
        position = serializers.IntegerField(
            source="id", help_text="The event's place in the whole log: increasing, with gaps."
        )
        relayed_at = serializers.DateTimeField(
            allow_null=True, help_text="When its deliveries were made; null while it waits for the relay."
        )
        deliveries = DeliverySummarySerializer(many=True, help_text="One per handler subscribed to the event.")

        class Meta:
            ref_name = "LoggedEvent"

    @extend_schema(
        operation_id="events_list",
        tags=["events"],
        parameters=[FilterSerializer],
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        found = dict(filters.validated_data)
        events = selectors.events_search(event_type=found.pop("type", None), **found)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(events, request, view=self)
        if page is None:  # a paging class without a page size: all of them, as DRF's views do
            page = list(events)
        holds = selectors.deliveries_held(delivery_ids=[d.id for event in page for d in event.deliveries.all()])
        context = {"holds": holds, "children": selectors.caused_events(page)}
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True, context=context).data)
