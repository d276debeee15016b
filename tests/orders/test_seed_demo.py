from io import StringIO

import pytest
from django.core.management import call_command

from inventory.models import Product, StockItem
from orders.management.commands.seed_demo import CATALOGUE

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_a_believable_catalogue_once_and_prints_the_sign_ins():
    # given / when: run twice
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)
    # then
    skus = [sku for sku, *_ in CATALOGUE]
    assert Product.objects.filter(sku__in=skus).count() == len(skus) >= 8
    prices = sorted(Product.objects.filter(sku__in=skus).values_list("price", flat=True))
    assert prices[0] < 5
    assert prices[-1] > 500
    on_hand = set(StockItem.objects.filter(sku__in=skus).values_list("on_hand", flat=True))
    assert max(on_hand) >= 10_000
    assert 5 in on_hand
    assert "customer / customer-demo-pass" in out.getvalue()
    assert "staff / staff-demo-pass" in out.getvalue()
