"""Filters of the customer mail templates (``{% load mail %}``)."""

from django import template
from django.utils.formats import number_format

from outbox.events import Money

register = template.Library()


@register.filter
def money(value: Money) -> str:
    """``12.90 EUR``: two decimals, the active language's separators (Django's number formatting), the currency code."""
    amount = number_format(value.amount, decimal_pos=2, use_l10n=True, force_grouping=True)
    return f"{amount} {value.currency}"
