"""The shop's order forms: lines (a formset of fixed rows), address and payment token; a cancellation; and the
admin's choice of a time to see an order as of.

Forms parse and check what a person typed; the orders services decide.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from django import forms

from payments.checkout import test_tokens

from .catalogue import ProductAvailability
from .events import country_code
from .models import InvalidOrder
from .services import MAX_QUANTITY, MAX_TOKEN_LENGTH, LineRequest

LINE_ROWS = 5  # empty rows on a new order form; unused ones are ignored


class OrderLineForm(forms.Form):
    sku = forms.ChoiceField(label="Product", required=False)
    quantity = forms.IntegerField(label="Quantity", min_value=1, max_value=MAX_QUANTITY, initial=1, required=False)

    def __init__(self, *args, products: Sequence[ProductAvailability] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        sku = self.fields["sku"]
        assert isinstance(sku, forms.ChoiceField)  # declared above
        sku.choices = [("", "(none)")] + [
            (p.sku, f"{p.name} ({p.sku}): {p.price} {p.currency}, {p.available} available") for p in products
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("sku") and not cleaned.get("quantity") and "quantity" not in self.errors:
            self.add_error("quantity", "How many? At least 1.")
        return cleaned  # a line without a product is an unused line, whatever its quantity


class BaseOrderLineFormSet(forms.BaseFormSet):
    """The order's lines. Whether each SKU is known, and on one line only, is the service's to say
    (:meth:`OrderForm.show_refusal` puts what it says beside the line)."""

    def clean(self) -> None:
        if any(self.errors):
            return
        if not self.filled():
            raise forms.ValidationError("Choose at least one product.", code="no_lines")

    def filled(self) -> list[OrderLineForm]:
        """The forms of the lines filled in, in the order they were written: those the order is placed with."""
        return [form for form in self.forms if form.cleaned_data.get("sku")]

    def requested(self) -> list[LineRequest]:
        """The filled-in lines, in the order they were written."""
        return [
            LineRequest(sku=form.cleaned_data["sku"], quantity=form.cleaned_data["quantity"]) for form in self.filled()
        ]


# A subclass of BaseOrderLineFormSet (formset_factory's type says only BaseFormSet).
OrderLineFormSet = cast(
    "type[BaseOrderLineFormSet]",
    forms.formset_factory(
        OrderLineForm, formset=BaseOrderLineFormSet, extra=LINE_ROWS, max_num=LINE_ROWS * 4, validate_max=True
    ),
)


class OrderForm(forms.Form):
    """Where to ship it and how to pay; with the sandbox gateway, its test tokens (``sandbox_tokens``)."""

    name = forms.CharField(label="Name", max_length=200)
    line1 = forms.CharField(label="Address line 1", max_length=200)
    line2 = forms.CharField(label="Address line 2", max_length=200, required=False)
    city = forms.CharField(label="City", max_length=100)
    postal_code = forms.CharField(label="Postal code", max_length=20)
    country = forms.CharField(label="Country", max_length=2, help_text="Its two-letter ISO code, e.g. DE, FR or GB.")
    payment_token = forms.CharField(
        label="Payment token",
        max_length=MAX_TOKEN_LENGTH,
        help_text="The card token your payment provider's checkout gave you.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sandbox_tokens = test_tokens()  # none unless payments go to the sandbox
        if self.sandbox_tokens:
            token = self.fields["payment_token"]
            token.initial, token.help_text = "tok_visa", "A sandbox card token: see the tokens below."

    def clean_country(self) -> str:
        try:
            return country_code(self.cleaned_data["country"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def shipping_address(self) -> dict[str, str]:
        fields = ("name", "line1", "line2", "city", "postal_code", "country")
        return {field: self.cleaned_data[field] for field in fields}

    def show_refusal(self, refused: InvalidOrder, lines: BaseOrderLineFormSet) -> None:
        """What the service refused, beside each field it names (``lines.1.sku``: the second filled line's product;
        ``shipping_address.city``; ``payment_token``), and anything else above the form."""
        filled = lines.filled()
        for path, messages in refused.errors.items():
            for message in messages:
                form, field = _field_at(path, self, filled)
                form.add_error(field, message)
        if not refused.errors:
            self.add_error(None, str(refused))


class CancelForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.TextInput(attrs={"size": 40}),
        help_text="Kept on the order and told to the customer.",
    )


class AsOfForm(forms.Form):
    """The time staff pick to see an order as it was then (the admin's order page, ``?as_of=``)."""

    EXAMPLE = "2026-03-01 12:00:00 or 2026-03-01T13:00:00.250+01:00"

    as_of = forms.DateTimeField(
        label="As of",
        help_text=f"A date and time, e.g. {EXAMPLE}: UTC, unless it gives its offset.",
        error_messages={"invalid": f"Give a date and time, e.g. {EXAMPLE}."},
        widget=forms.DateTimeInput(attrs={"size": 32, "placeholder": "2026-03-01 12:00:00"}),
    )

    def clean_as_of(self) -> dt.datetime:
        try:
            return self.cleaned_data["as_of"].astimezone(dt.UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC, which datetime cannot hold
            raise forms.ValidationError("This time is out of range: give one after 0001-01-01 in UTC.") from None


def _field_at(path: str, order: OrderForm, filled: list[OrderLineForm]) -> tuple[forms.Form, str | None]:
    """The form and field of the order form that a service's error path names; the order form as a whole if none."""
    match path.split("."):
        case ["lines", index, field] if (
            index.isdigit() and int(index) < len(filled) and field in filled[int(index)].fields
        ):
            return filled[int(index)], field
        case ["shipping_address", field] | [field] if field in order.fields:
            return order, field
    return order, None
