from decimal import Decimal

import pytest

from inventory.services import product_reprice
from orders.events import OrderConfirmed
from orders.models import (
    IdempotencyKey,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidOrder,
    InvalidOrderTransition,
    Order,
    OrderForbidden,
    OrderSaga,
)
from orders.services import LineRequest, order_cancel, order_confirm, order_place, order_place_once
from outbox.events import registry
from outbox.models import OutboxEvent
from tests.factories import ADDRESS, CustomerFactory, make_product, place_order
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


def _events(order: Order) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(aggregate_id=str(order.id)).order_by("id"))


def test_placing_an_order_captures_catalogue_prices_and_publishes_order_placed():
    # given
    pen, lamp = make_product(price="1.20"), make_product(price="39.00")
    customer = CustomerFactory()
    # when
    order = order_place(
        customer_id=customer.pk,
        lines=[LineRequest(pen.sku, 3), {"sku": lamp.sku, "quantity": 1}],
        shipping_address=ADDRESS,
        payment_token="tok_visa",
    )
    # then
    assert (order.status, order.total_amount, order.currency) == ("draft", Decimal("42.60"), "EUR")
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines.order_by("id")] == [
        (pen.sku, 3, Decimal("1.20")),
        (lamp.sku, 1, Decimal("39.00")),
    ]
    [placed] = _events(order)
    assert placed.type == "orders.OrderPlaced"
    assert placed.correlation_id == order.correlation_id
    assert placed.payload["total"] == {"amount": "42.60", "currency": "EUR"}


def test_a_later_price_change_does_not_change_a_placed_order():
    # given
    product = make_product(price="10.00")
    order = place_order(lines=[(product, 2)])
    # when
    product_reprice(sku=product.sku, price=Decimal("99.00"))
    # then
    order.refresh_from_db()
    assert order.total_amount == Decimal("20.00")
    assert order.lines.get().unit_price == Decimal("10.00")


@pytest.mark.parametrize(
    ("lines", "errors"),
    [
        ([], {"lines": ["An order has between 1 and 100 lines; this one has 0."]}),
        (
            [{"sku": "NO-SUCH-SKU", "quantity": 1}],
            {"lines.0.sku": ["No product has SKU 'NO-SUCH-SKU': choose one from the catalogue."]},
        ),
        (
            [{"sku": "ANY", "quantity": 1}, {"sku": "ANY", "quantity": 0}],
            {"lines.1.quantity": ["The quantity of ANY must be a whole number of at least 1."]},
        ),
        ([{"sku": "ANY", "qty": 1}], {"lines": ["Each line needs exactly a sku and a quantity."]}),
    ],
    ids=["no lines", "unknown sku", "zero quantity", "no quantity"],
)
def test_an_invalid_order_is_refused_naming_the_field_and_nothing_is_written(lines, errors):
    # given
    customer = CustomerFactory()
    # when / then
    with pytest.raises(InvalidOrder) as refused:
        order_place(customer_id=customer.pk, lines=lines, shipping_address=ADDRESS, payment_token="tok_visa")
    assert refused.value.errors == errors
    assert str(refused.value) == " ".join(message for messages in errors.values() for message in messages)
    assert not Order.objects.filter(customer=customer).exists()
    assert not OutboxEvent.objects.filter(type="orders.OrderPlaced", payload__customer_id=customer.pk).exists()


def test_each_line_whose_sku_is_unknown_or_repeated_is_named_at_once():
    # given a product on lines 0 and 2, and a SKU no product has on line 1
    product, customer = make_product(), CustomerFactory()
    lines = [LineRequest(product.sku, 1), LineRequest("NO-SUCH-SKU", 1), LineRequest(product.sku, 2)]
    # when / then
    with pytest.raises(InvalidOrder) as refused:
        order_place(customer_id=customer.pk, lines=lines, shipping_address=ADDRESS, payment_token="tok_visa")
    assert refused.value.errors == {
        "lines.1.sku": ["No product has SKU 'NO-SUCH-SKU': choose one from the catalogue."],
        "lines.2.sku": [f"{product.sku} is on an earlier line: put the whole quantity on one line."],
    }
    assert not Order.objects.filter(customer=customer).exists()


def test_an_incomplete_address_is_refused_naming_its_fields():
    # given
    product, customer = make_product(), CustomerFactory()
    # when / then
    with pytest.raises(InvalidOrder, match="shipping address") as refused:
        order_place(
            customer_id=customer.pk,
            lines=[LineRequest(product.sku, 1)],
            shipping_address={**ADDRESS, "country": "Great Britain", "city": ""},
            payment_token="tok_visa",
        )
    assert set(refused.value.errors) == {"shipping_address.city", "shipping_address.country"}


def test_a_blank_payment_token_is_refused_naming_it():
    product, customer = make_product(), CustomerFactory()
    with pytest.raises(InvalidOrder) as refused:
        order_place(
            customer_id=customer.pk, lines=[LineRequest(product.sku, 1)], shipping_address=ADDRESS, payment_token=" "
        )
    assert refused.value.errors == {"payment_token": ["A payment token is required."]}


def test_lines_in_two_currencies_are_refused():
    # given
    euro, dollar = make_product(currency="EUR"), make_product(currency="USD")
    # when / then
    with pytest.raises(InvalidOrder, match="one currency"):
        place_order(lines=[(euro, 1), (dollar, 1)])


def test_confirming_publishes_order_confirmed_v2_and_starts_the_saga_without_waiting():
    # given
    product = make_product(price="12.90")
    order = place_order(lines=[(product, 2)])
    # when
    order = order_confirm(order_id=order.id)
    # then
    assert order.status == "confirmed"
    assert OrderSaga.objects.get(order=order).outcome == "pending"
    confirmed = _events(order)[-1]
    assert (confirmed.type, confirmed.version, confirmed.correlation_id) == (
        "orders.OrderConfirmed",
        2,
        order.correlation_id,
    )
    event = registry.decode(confirmed.type, confirmed.version, confirmed.payload)
    assert isinstance(event, OrderConfirmed)
    assert event.total.amount == Decimal("25.80")
    assert event.currency == "EUR"
    assert [(line.sku, line.quantity) for line in event.lines] == [(product.sku, 2)]
    assert event.customer_email == order.customer_email
    assert event.shipping_address.country == "GB"
    assert event.payment_token == "tok_visa"


def test_confirming_again_returns_the_order_unchanged_and_publishes_nothing():
    # given a confirmed order
    order = place_order(confirm=True)
    confirmed_at, events = order.confirmed_at, len(_events(order))
    # when
    again = order_confirm(order_id=order.id)
    # then
    assert (again.status, again.confirmed_at) == ("confirmed", confirmed_at)
    assert len(_events(order)) == events
    assert OrderSaga.objects.filter(order=order).count() == 1


def test_confirming_an_order_cancelled_after_its_confirmation_returns_it_as_it_is():
    # given
    order = place_order(confirm=True)
    order_cancel(order_id=order.id, reason="Changed my mind", by_user_id=order.customer_id)
    events = len(_events(order))
    # when
    again = order_confirm(order_id=order.id)
    # then
    assert (again.status, again.cancel_reason) == ("cancelled", "Changed my mind")
    assert len(_events(order)) == events


def test_a_draft_cancelled_before_any_confirmation_cannot_be_confirmed():
    # given
    order = place_order()
    order_cancel(order_id=order.id, reason="Not now", by_user_id=order.customer_id)
    # when / then
    with pytest.raises(InvalidOrderTransition, match="is cancelled: it cannot be confirmed"):
        order_confirm(order_id=order.id)
    assert not OrderSaga.objects.filter(order=order).exists()


def test_cancelling_publishes_order_cancelled_with_the_reason():
    # given
    order = place_order(confirm=True)
    # when
    order = order_cancel(order_id=order.id, reason="Changed my mind", by_user_id=order.customer_id)
    # then
    assert (order.status, order.cancel_code, order.cancel_reason) == ("cancelled", "customer", "Changed my mind")
    cancelled = _events(order)[-1]
    assert cancelled.type == "orders.OrderCancelled"
    assert cancelled.payload["reason"] == "Changed my mind"
    assert cancelled.payload["refund_due"] is False


def test_a_shipped_order_cannot_be_cancelled():
    # given a shipped order
    order = place_order(confirm=True)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.SHIPPED)
    # when / then
    with pytest.raises(InvalidOrderTransition, match="is shipped: it cannot be cancelled"):
        order_cancel(order_id=order.id, reason="too late", by_user_id=order.customer_id)
    assert Order.objects.get(pk=order.pk).status == "shipped"


# placing once per idempotency key


def _place_once(customer, product, *, key: str = "key-1", quantity: int = 1):
    return order_place_once(
        customer_id=customer.pk,
        idempotency_key=key,
        lines=[LineRequest(product.sku, quantity)],
        shipping_address=ADDRESS,
        payment_token="tok_visa",
    )


def test_placing_again_with_the_same_key_and_arguments_returns_the_first_order_and_writes_nothing():
    # given
    product, customer = make_product(), CustomerFactory()
    first = _place_once(customer, product)
    events = OutboxEvent.objects.count()
    # when
    again = _place_once(customer, product)
    # then
    assert (first.replayed, again.replayed) == (False, True)
    assert again.order.id == first.order.id
    assert Order.objects.filter(customer=customer).count() == 1
    assert OutboxEvent.objects.count() == events
    assert IdempotencyKey.objects.get(customer=customer).order_id == first.order.id


def test_the_same_key_with_other_arguments_is_refused_naming_the_order():
    # given
    product, customer = make_product(), CustomerFactory()
    first = _place_once(customer, product)
    # when / then
    with pytest.raises(IdempotencyKeyReused, match=f"already placed order {first.order.id}") as refused:
        _place_once(customer, product, quantity=2)
    assert refused.value.order_id == first.order.id
    assert Order.objects.filter(customer=customer).count() == 1


def test_an_order_refused_by_the_rules_leaves_its_key_unused():
    # given
    customer = CustomerFactory()
    # when
    with pytest.raises(InvalidOrder, match="No product has SKU"):
        order_place_once(
            customer_id=customer.pk,
            idempotency_key="key-1",
            lines=[LineRequest("NO-SUCH-SKU", 1)],
            shipping_address=ADDRESS,
            payment_token="tok_visa",
        )
    # then
    assert not IdempotencyKey.objects.filter(customer=customer).exists()


@pytest.mark.parametrize("key", ["", " ", "k" * 256, "ключ", "a\nb"])
def test_a_key_that_cannot_be_one_is_refused(key):
    product, customer = make_product(), CustomerFactory()
    with pytest.raises(InvalidIdempotencyKey):
        _place_once(customer, product, key=key)
    assert not Order.objects.filter(customer=customer).exists()


def test_cancelling_a_cancelled_order_returns_it_as_it_is():
    # given
    order = place_order(confirm=True)
    order_cancel(order_id=order.id, reason="Changed my mind", by_user_id=order.customer_id)
    events = len(_events(order))
    # when
    again = order_cancel(order_id=order.id, reason="Really", by_user_id=order.customer_id)
    # then
    assert (again.status, again.cancel_reason) == ("cancelled", "Changed my mind")
    assert len(_events(order)) == events


# who may: the rules the API and the pages leave to the services


@pytest.mark.parametrize("perms", [(), ("orders.view_order", "orders.change_order")], ids=["customer", "staff"])
def test_only_the_orders_customer_may_confirm_it(perms):
    # given a draft, and someone else (staff who may change any order, or not)
    order, other = place_order(), make_user("other", staff=bool(perms), perms=perms)
    # when / then
    with pytest.raises(OrderForbidden, match=r"^Only the customer who placed an order may confirm it\.$"):
        order_confirm(order_id=order.id, by_user_id=other.pk)
    assert Order.objects.get(pk=order.pk).status == "draft"
    # and its customer may
    assert order_confirm(order_id=order.id, by_user_id=order.customer_id).status == "confirmed"


def test_someone_without_orders_change_order_may_not_cancel_anothers_order_even_when_it_is_cancelled():
    # given
    order, viewer = place_order(confirm=True), make_user("vic", staff=True, perms=("orders.view_order",))
    message = r"^Cancelling another customer's order needs the orders\.change_order permission\.$"
    # when / then
    with pytest.raises(OrderForbidden, match=message):
        order_cancel(order_id=order.id, reason="Fraud check.", by_user_id=viewer.pk)
    assert Order.objects.get(pk=order.pk).status == "confirmed"
    order_cancel(order_id=order.id, reason="No.", by_user_id=order.customer_id)
    with pytest.raises(OrderForbidden, match=message):
        order_cancel(order_id=order.id, reason="Fraud check.", by_user_id=viewer.pk)


def test_who_cancels_decides_the_code():
    staff = make_user("sam", staff=True, perms=("orders.change_order",))
    theirs, own = place_order(confirm=True), place_order(customer=staff)
    assert order_cancel(order_id=theirs.id, reason="Fraud check.", by_user_id=staff.pk).cancel_code == "staff"
    assert order_cancel(order_id=own.id, reason="Mine.", by_user_id=staff.pk).cancel_code == "customer"


def test_the_system_cancels_with_its_own_code():
    order = place_order(confirm=True)
    cancelled = order_cancel(order_id=order.id, reason="Declined.", code=Order.CancelCode.PAYMENT_FAILED)
    assert (cancelled.cancel_code, _events(order)[-1].payload["code"]) == ("payment_failed", "payment_failed")


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ({}, TypeError),
        ({"by_user_id": 0, "code": "staff"}, TypeError),
        ({"code": "customer"}, ValueError),
    ],
    ids=["nobody", "a person with a code", "the system as a customer"],
)
def test_a_cancellation_says_who_cancels_once(who, error):
    order = place_order()
    with pytest.raises(error):
        order_cancel(order_id=order.id, reason="?", **who)
    assert Order.objects.get(pk=order.pk).status == "draft"
