"""The order form shows what the service refused beside the field it names."""

from decimal import Decimal

import pytest

from orders.catalogue import ProductAvailability
from orders.forms import OrderForm, OrderLineFormSet
from orders.models import InvalidOrder

pytestmark = pytest.mark.django_db


def _bound(*skus: str) -> tuple[OrderForm, OrderLineFormSet]:
    data = {
        "lines-TOTAL_FORMS": str(len(skus)),
        "lines-INITIAL_FORMS": "0",
        **{f"lines-{i}-sku": sku for i, sku in enumerate(skus)},
        **{f"lines-{i}-quantity": "1" for i in range(len(skus))},
        "name": "Ada",
        "line1": "1 Road",
        "city": "Ghent",
        "postal_code": "9000",
        "country": "BE",
        "payment_token": "tok_visa",
    }
    products = [ProductAvailability(sku, sku, Decimal("1.00"), "EUR", 1) for sku in sorted({*skus} - {""})]
    form, lines = OrderForm(data), OrderLineFormSet(data, prefix="lines", form_kwargs={"products": products})
    assert form.is_valid(), form.errors
    assert lines.is_valid(), lines.errors
    return form, lines


def test_each_path_the_service_names_lands_on_its_field_and_the_rest_above_the_form():
    # given a form with a blank row between two lines
    form, lines = _bound("A", "", "B")
    refused = InvalidOrder.in_fields(
        {
            "lines.1.sku": ["B is no more."],
            "shipping_address.city": ["No such city."],
            "payment_token": ["Too long."],
            "lines": ["Too many."],
            "lines.7.sku": ["Beyond the lines."],
        }
    )
    # when
    form.show_refusal(refused, lines)
    # then
    assert (lines.forms[0].errors, lines.forms[1].errors) == ({}, {})
    assert lines.forms[2].errors == {"sku": ["B is no more."]}
    assert (form.errors["city"], form.errors["payment_token"]) == (["No such city."], ["Too long."])
    assert form.non_field_errors() == ["Too many.", "Beyond the lines."]


def test_a_refusal_of_the_whole_order_is_shown_above_the_form():
    form, lines = _bound("A")
    form.show_refusal(InvalidOrder("All lines of one order must be in one currency, not EUR, USD."), lines)
    assert form.non_field_errors() == ["All lines of one order must be in one currency, not EUR, USD."]
