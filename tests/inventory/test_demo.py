"""The demo catalogue (inventory.demo): what seed_demo and the benchmarks seed."""

import pytest
from django.contrib.auth import get_user_model

from inventory.demo import CATALOGUE, seed_catalogue
from inventory.models import Product
from inventory.selectors import stock_level

pytestmark = pytest.mark.django_db


def test_seed_catalogue_makes_the_catalogue_and_no_user():
    seed_catalogue()
    assert Product.objects.filter(sku__in=[sku for sku, *_ in CATALOGUE]).count() == len(CATALOGUE)
    assert not get_user_model().objects.exists()


def test_seeding_again_receives_nothing_more():
    # given the catalogue seeded
    seed_catalogue()
    # when seeded again
    seed_catalogue()
    # then each product holds its opening units once
    assert {sku: stock_level(sku=sku).on_hand for sku, *_ in CATALOGUE} == {
        sku: on_hand for sku, _name, _price, on_hand in CATALOGUE
    }
