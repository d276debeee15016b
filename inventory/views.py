"""The shop's catalogue page: the front page, every product with its price and the units available now.

Anyone may look, signed in or not; ordering (``orders:new``) asks a visitor to sign in first.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .catalogue import catalogue_products


@require_safe
def catalogue(request: HttpRequest) -> HttpResponse:
    """The front page: the catalogue with prices and availability, for anyone."""
    products = catalogue_products()
    return render(request, "inventory/catalogue.html", {"products": products})
