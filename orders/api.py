"""Orders over REST: customers place, confirm, cancel and follow their own orders; staff with ``orders.view_order``
see any, and with ``orders.change_order`` cancel any (staff status alone grants neither).

One API class per operation; each parses, calls one orders selector or
service, and renders. An order someone may not see is answered as if it did
not exist (404), never as forbidden: a customer learns nothing about another's
orders, not even that they exist.
"""

import datetime as dt
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.db import transaction
from django.urls import reverse
from django.utils.functional import lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from config.api.errors import Conflict, ErrorSerializer, InvalidInputSerializer, Unavailable, Unprocessable
from config.api.fields import AS_OF_FORMAT, AwareDateTimeField
from config.api.pagination import Pagination, paginated_response
from config.api.schema import error_responses
from config.api.throttling import OrderPlaceThrottle
from outbox.selectors import caused_events, deliveries_held
from outbox.serializers import CausedEventsSerializer, DeliverySummarySerializer
from payments.checkout import test_tokens

from . import selectors, services
from .events import COUNTRY_CODE_PATTERN, country_code
from .models import (
    IdempotencyKey,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidOrder,
    InvalidOrderTransition,
    Order,
    OrderForbidden,
)
from .selectors import InventoryStatus, PaymentStatus

ORDER_ID = OpenApiParameter("order_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The order's id.")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": IdempotencyKey.MAX_LENGTH, "pattern": "^[ -~]+$"},
    OpenApiParameter.HEADER,
    description="Makes a retry safe: a key of your choosing (a fresh UUID per new order), "
    f"1 to {IdempotencyKey.MAX_LENGTH} printable ASCII characters, kept per customer. "
    "The same key with the same body answers the order the first request placed (201, nothing new is written); "
    "the same key with a different body is a 422. Without the header every request places a new order.",
)
IDEMPOTENT_REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    {"type": "string", "enum": ["true"]},
    OpenApiParameter.HEADER,
    response=[201],
    description="`true` when an earlier request with the same `Idempotency-Key` placed this order.",
)
PAYMENT_TOKEN = "The card token your payment provider's client-side checkout returned."


def _payment_token_help() -> str:
    """The sandbox's test tokens are documented only while payments go to it (read as the schema is built)."""
    tokens = "; ".join(f"`{token}` {what}" for token, what in test_tokens())
    return f"{PAYMENT_TOKEN} In the sandbox: {tokens}." if tokens else PAYMENT_TOKEN


def _meanings(meanings: dict[str, str]) -> str:
    return " ".join(f"`{value}`: {meaning}" for value, meaning in meanings.items())


@extend_schema_field({"type": "string", "pattern": COUNTRY_CODE_PATTERN})
class CountryCodeField(serializers.CharField):
    """A country's ISO 3166-1 alpha-2 code, either case, read upper (:func:`orders.events.country_code`)."""

    def to_internal_value(self, data: Any) -> str:
        try:
            return country_code(super().to_internal_value(data))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ShippingAddressSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20)
    country = CountryCodeField(help_text="ISO 3166-1 alpha-2, e.g. `DE` or `FR` (either case; stored upper).")

    class Meta:
        ref_name = "ShippingAddress"


class MoneySerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="A decimal string, e.g. `19.50`.")
    currency = serializers.CharField(help_text="ISO 4217, e.g. `EUR`.")

    class Meta:
        ref_name = "Money"


class OrderLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField(help_text="The product's name when the order was placed.")
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="The price when the order was placed, in the order's currency."
    )

    class Meta:
        ref_name = "OrderLine"


class ShipmentSerializer(serializers.Serializer):
    carrier = serializers.CharField()
    tracking_number = serializers.CharField()
    estimated_delivery = serializers.DateField(allow_null=True, help_text="The carrier's estimated delivery date.")

    class Meta:
        ref_name = "Shipment"


class OrderSerializer(serializers.Serializer):
    """An order as its customer (or staff who may see it) sees it: what was ordered, and how far it has got."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=Order.Status.choices,
        help_text="`draft` until confirmed; then `confirmed`, `ready_to_ship` (paid and reserved), `shipped`; "
        "or `cancelled` at any point before shipment.",
    )
    customer = serializers.CharField(help_text="The username of the customer who placed it.")
    lines = OrderLineSerializer(many=True)
    total = MoneySerializer()
    payment_status = serializers.ChoiceField(
        choices=list(PaymentStatus.MEANINGS), help_text=_meanings(PaymentStatus.MEANINGS)
    )
    inventory_status = serializers.ChoiceField(
        choices=list(InventoryStatus.MEANINGS), help_text=_meanings(InventoryStatus.MEANINGS)
    )
    shipment = ShipmentSerializer(allow_null=True, help_text="Null until the order has shipped.")
    shipping_address = ShippingAddressSerializer()
    created_at = serializers.DateTimeField()
    confirmed_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    shipped_at = serializers.DateTimeField(allow_null=True)
    cancel_reason = serializers.CharField(allow_null=True, help_text="Why it was cancelled; null unless cancelled.")

    class Meta:
        ref_name = "Order"

    def to_representation(self, order: Order | Mapping[str, Any]) -> dict[str, Any]:
        """An order, or the fields of one already gathered (:func:`_snapshot_view`)."""
        return super().to_representation(order if isinstance(order, Mapping) else _order_view(order))


class OrderDetailSerializer(OrderSerializer):
    """An order now, or as it was at the time asked for with `as_of`."""

    as_of = serializers.DateTimeField(
        required=False,
        help_text="Only when `as_of` was asked for: the time this is the order as of, in UTC "
        "(now, when the time asked for is in the future).",
    )

    class Meta:
        ref_name = "OrderDetail"


def _order_view(order: Order) -> dict[str, Any]:
    """The order, as the fields of :class:`OrderSerializer`."""
    return {
        "id": order.id,
        "status": order.status,
        "customer": order.customer.get_username(),
        "lines": order.lines.all(),
        "total": {"amount": order.total_amount, "currency": order.currency},
        "payment_status": selectors.order_payment_status(order=order),
        "inventory_status": selectors.order_inventory_status(order=order),
        "shipment": selectors.order_shipment(order=order),
        "shipping_address": order.shipping_address,
        "created_at": order.created_at,
        "confirmed_at": order.confirmed_at,
        "cancelled_at": order.cancelled_at,
        "shipped_at": order.shipped_at,
        "cancel_reason": order.cancel_reason if order.status == Order.Status.CANCELLED else None,
    }


def _snapshot_view(order: Order, snapshot: selectors.OrderSnapshot) -> dict[str, Any]:
    """The order as of a time, as the fields of :class:`OrderDetailSerializer`."""
    return {
        "id": snapshot.id,
        "status": snapshot.status,
        "customer": order.customer.get_username(),
        "lines": [
            {"sku": line.sku, "name": line.name, "quantity": line.quantity, "unit_price": line.unit_price.amount}
            for line in snapshot.lines
        ],
        "total": {"amount": snapshot.total.amount, "currency": snapshot.total.currency},
        "payment_status": snapshot.payment_status,
        "inventory_status": snapshot.inventory_status,
        "shipment": snapshot.shipment,
        "shipping_address": snapshot.shipping_address,
        "created_at": snapshot.created_at,
        "confirmed_at": snapshot.confirmed_at,
        "cancelled_at": snapshot.cancelled_at,
        "shipped_at": snapshot.shipped_at,
        "cancel_reason": snapshot.cancel_reason,
        "as_of": snapshot.as_of,
    }


class OrderLineRequestSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=40, help_text="A product's SKU, as `GET /api/products/` lists it.")
    quantity = serializers.IntegerField(min_value=1, max_value=services.MAX_QUANTITY)

    class Meta:
        ref_name = "NewOrderLine"


class OrderLinesField(serializers.ListField):
    """The lines, counted before any is validated: 40,000 fit in 1 MiB, and each would be validated for nothing."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class OrderListApi(APIView):
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=Order.Status.choices, required=False, help_text="Only orders in this status."
        )

    @extend_schema(
        operation_id="orders_list", tags=["orders"], parameters=[FilterSerializer], responses=OrderSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        """The orders the caller may see, newest first: their own; every order with `orders.view_order`."""
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        orders = selectors.orders_visible_to(user=request.user, status=filters.validated_data.get("status"))
        return paginated_response(request=request, view=self, queryset=orders, serializer_class=OrderSerializer)


class OrderPlaceApi(APIView):
    throttle_classes = [OrderPlaceThrottle]  # ORDER_PLACE_RATE per user, shared with the order form

    class InputSerializer(serializers.Serializer):
        lines = OrderLinesField(
            child=OrderLineRequestSerializer(),
            min_length=1,
            max_length=services.MAX_LINES,
            error_messages={
                "empty": "An order needs at least one line.",
                "min_length": "An order needs at least one line.",
                "max_length": f"An order has at most {services.MAX_LINES} lines: split it into several orders.",
            },
        )
        shipping_address = ShippingAddressSerializer()
        payment_token = serializers.CharField(
            max_length=services.MAX_TOKEN_LENGTH, help_text=lazy(_payment_token_help, str)()
        )

        class Meta:
            ref_name = "NewOrder"

    @extend_schema(
        operation_id="orders_create",
        tags=["orders"],
        request=InputSerializer,
        parameters=[IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED],
        responses={
            201: OpenApiResponse(
                OrderSerializer,
                description="The draft order; confirm it to go ahead. For a retry with the same `Idempotency-Key` "
                "and body: the order the first request placed, as it is now, with `Idempotent-Replayed: true`.",
            ),
            **error_responses(422),
        },
    )
    def post(self, request: Request) -> Response:
        """Place a draft order, priced from the catalogue now. Nothing is charged or reserved until it is confirmed.

        Send an `Idempotency-Key` (a fresh UUID per new order) to make a retry safe:
        the same key and body give the same order, never a second one.
        """
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get(IDEMPOTENCY_KEY.name)
        customer_id = request.user.pk
        if customer_id is None:  # never: the permission lets only a signed-in user this far
            raise NotAuthenticated()
        try:
            with transaction.atomic():  # the answer is read before the commit: nothing can fail after it
                placement = _place(customer_id, key, serializer.validated_data)
                body = OrderSerializer(_visible_order(request, placement.order.id)).data
        except InvalidIdempotencyKey as exc:
            raise ValidationError({IDEMPOTENCY_KEY.name: [str(exc)]}) from exc
        except IdempotencyKeyReused as exc:
            raise Unprocessable(str(exc), code="idempotency_key_reused") from exc
        except InvalidOrder as exc:  # each line's SKU is checked there, and only there: its errors name the line
            raise ValidationError(exc.errors or {api_settings.NON_FIELD_ERRORS_KEY: [str(exc)]}) from exc
        headers = {"Location": reverse("orders-api:order-detail", kwargs={"order_id": placement.order.id})}
        if placement.replayed:
            headers[IDEMPOTENT_REPLAYED.name] = "true"
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)


def _place(customer_id: int, key: str | None, arguments: dict[str, Any]) -> services.Placement:
    if key is None:
        return services.Placement(order=services.order_place(customer_id=customer_id, **arguments), replayed=False)
    return services.order_place_once(customer_id=customer_id, idempotency_key=key, **arguments)


class OrderCollectionApi(OrderPlaceApi, OrderListApi):
    """``/api/orders/``: two operations on one path, GET (:class:`OrderListApi`) and POST (:class:`OrderPlaceApi`)."""


# What a bad or too early `as_of` answers (GET /api/orders/{id}/?as_of=).
AS_OF_ERRORS = {
    400: OpenApiResponse(
        InvalidInputSerializer,
        description="`as_of` is not an ISO 8601 date and time with a UTC offset, or is out of range: nothing was read.",
        examples=[
            OpenApiExample(
                "malformed as_of",
                value={
                    "detail": f"Invalid input: as_of: {AwareDateTimeField.default_error_messages['invalid']}",
                    "code": "invalid",
                    "errors": {"as_of": [AwareDateTimeField.default_error_messages["invalid"]]},
                },
                status_codes=[400],
                response_only=True,
            )
        ],
    ),
    404: OpenApiResponse(
        ErrorSerializer,
        description="No such order (or not yours to see); or, with `as_of`, the order did not exist yet at that time.",
        examples=[
            OpenApiExample(
                "before the order was created",
                value={
                    "detail": "Order 0b8e5c1e-6f0a-4a57-9d1e-4c8a1f0e2b3d did not exist yet at "
                    "2026-03-01T12:00:00Z: it was created at 2026-03-02T09:30:00.123456Z.",
                    "code": "not_found",
                },
                status_codes=[404],
                response_only=True,
            )
        ],
    ),
    503: OpenApiResponse(
        ErrorSerializer,
        description="With `as_of`: the order's history holds an event this release cannot read yet "
        "(written by a newer one, during a deploy); try again once every process runs it.",
    ),
}


class OrderDetailApi(APIView):
    """One order: its lines, total, and how far payment, stock and shipment have got; now, or at a past time.

    With `as_of`, the order as it was then, rebuilt from its events: the same
    fields, and `as_of`. A change of the order itself (confirmed, cancelled,
    shipped) counts from the time the order gives for it (`confirmed_at`...);
    what payments, inventory and shipping did, from the time their event was
    recorded. An answer for the last moments may still change, as transactions
    in progress then commit.
    """

    class FilterSerializer(serializers.Serializer):
        as_of = AwareDateTimeField(
            required=False,
            help_text=f"The order as it was at this time: {AS_OF_FORMAT}. Without it, or in the future, now. "
            "A time without a UTC offset is refused (400), never taken as UTC; "
            "a time before the order was created is a 404.",
        )

    @extend_schema(
        operation_id="orders_retrieve",
        tags=["orders"],
        parameters=[ORDER_ID, FilterSerializer],
        responses={
            200: OrderDetailSerializer,
            **AS_OF_ERRORS,
        },
    )
    def get(self, request: Request, order_id: UUID) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        order = _visible_order(request, order_id)
        if "as_of" not in filters.validated_data:
            return Response(OrderDetailSerializer(order).data)
        at = filters.validated_data["as_of"]
        try:
            snapshot = selectors.order_as_of(order=order, at=at)
        except selectors.HistoryUnreadable as unreadable:
            raise Unavailable(str(unreadable)) from unreadable
        if snapshot is None:
            raise NotFound(
                f"Order {order.id} did not exist yet at {_iso(at)}: it was created at {_iso(order.created_at)}."
            )
        return Response(OrderDetailSerializer(_snapshot_view(order, snapshot)).data)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class OrderConfirmApi(APIView):
    """Confirm a draft order. Answers at once: payment, stock and shipping follow on their own.

    Follow the order with `GET /api/orders/{id}/` (its `status`, `payment_status`
    and `inventory_status`) or its events with `GET /api/orders/{id}/events/`.
    """

    @extend_schema(
        operation_id="orders_confirm",
        tags=["orders"],
        request=None,
        parameters=[ORDER_ID],
        responses={
            202: OpenApiResponse(
                OrderSerializer,
                description="Confirmed: payment and stock are being secured. Confirming again is safe: "
                "an order confirmed before answers 202 with its state now, and nothing happens twice.",
            ),
            **error_responses(403, 409),
        },
    )
    def post(self, request: Request, order_id: UUID) -> Response:
        order = _visible_order(request, order_id)
        try:
            with transaction.atomic():  # the answer is read before the commit: nothing can fail after it
                services.order_confirm(order_id=order.id, by_user_id=request.user.pk)
                body = OrderSerializer(_visible_order(request, order_id)).data
        except OrderForbidden as exc:
            raise PermissionDenied(str(exc)) from exc
        except InvalidOrderTransition as exc:
            raise Conflict(str(exc)) from exc
        except InvalidOrder as exc:
            raise NotFound(str(exc)) from exc
        return Response(body, status=status.HTTP_202_ACCEPTED)


class OrderCancelApi(APIView):
    """Cancel an order that has not shipped. Anything paid is refunded and anything reserved released, in time.

    Its customer may cancel it; anyone else needs the `orders.change_order` permission.
    """

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(
            max_length=500, help_text="Why: kept on the order and told to the customer in the cancellation mail."
        )

        class Meta:
            ref_name = "OrderCancellation"

    @extend_schema(
        operation_id="orders_cancel",
        tags=["orders"],
        request=InputSerializer,
        parameters=[ORDER_ID],
        responses={200: OpenApiResponse(OrderSerializer, description="Cancelled."), **error_responses(403, 409)},
    )
    def post(self, request: Request, order_id: UUID) -> Response:
        order = _visible_order(request, order_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data["reason"]
        try:
            with transaction.atomic():  # the answer is read before the commit: nothing can fail after it
                services.order_cancel(order_id=order.id, reason=reason, by_user_id=request.user.pk)
                body = OrderSerializer(_visible_order(request, order_id)).data
        except OrderForbidden as exc:
            raise PermissionDenied(str(exc)) from exc
        except InvalidOrderTransition as exc:
            raise Conflict(str(exc)) from exc
        except InvalidOrder as exc:
            raise NotFound(str(exc)) from exc
        return Response(body)


class OrderEventListApi(APIView):
    """The events of the order's life, from every context, in causal order, each with its deliveries.

    The first is `orders.OrderPlaced`; each later one was caused by an earlier
    one (`causation_id`), and all share the order's `correlation_id`. Each
    names the events it caused (`children`): with `causation_id`, the order's
    causal tree, whichever page each event is on.
    """

    pagination_class = Pagination

    class OutputSerializer(CausedEventsSerializer):
        deliveries = DeliverySummarySerializer(
            many=True, help_text="One per handler subscribed to the event: which context handled it, and how."
        )

        class Meta:
            ref_name = "OrderEvent"

    @extend_schema(
        operation_id="orders_events_list", tags=["orders"], parameters=[ORDER_ID], responses=OutputSerializer(many=True)
    )
    def get(self, request: Request, order_id: UUID) -> Response:
        order = _visible_order(request, order_id)
        paginator = self.pagination_class()
        events = paginator.paginate_queryset(selectors.order_events(order_id=order.id), request, view=self)
        holds = deliveries_held(delivery_ids=[d.id for event in events for d in event.deliveries.all()])
        context = {"holds": holds, "children": caused_events(events)}
        return paginator.get_paginated_response(self.OutputSerializer(events, many=True, context=context).data)


def _visible_order(request: Request, order_id: UUID) -> Order:
    order = selectors.order_visible_to(user=request.user, order_id=order_id)
    if order is None:
        sees_all = selectors.user_sees_every_order(user=request.user)
        raise NotFound(f"There is no order {order_id}." if sees_all else f"You have no order {order_id}.")
    return order
