"""``manage.py seed_demo``: the project's demo users, and each context's demo data through its own services."""

from io import StringIO

import pytest
from django.core.management import call_command

from inventory.demo import CATALOGUE
from inventory.models import Product, StockItem
from tests.support.commands import manage
from tests.support.database import every_table

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_a_believable_catalogue_once_and_prints_the_sign_ins(settings):
    # given a developer's machine
    settings.DEBUG = True
    # when: run twice
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


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "error"),
    [(["--bogus"], "unrecognized arguments: --bogus"), (["PEN-BLUE"], "unrecognized arguments: PEN-BLUE")],
    ids=["unknown flag", "an argument it takes none of"],
)
def test_run_from_the_shell_with_what_it_does_not_take_it_exits_2_naming_it_and_creates_nothing(
    no_live_outbox, args, error
):
    before = every_table()
    # when
    result = manage("seed_demo", *args)
    # then
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"manage.py seed_demo: error: {error}"
    assert every_table() == before


@pytest.mark.django_db(transaction=True)
def test_without_debug_it_refuses_exit_2_saying_why_and_creates_nothing(no_live_outbox):
    # given settings with DEBUG off (the test settings, as production's)
    before = every_table()
    # when
    result = manage("seed_demo")
    # then no known-password superuser, nor anything else, is created
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "CommandError: seed_demo creates a superuser with a known password, so it runs only with DEBUG on "
        "(config.settings.local on a developer's machine); create real users with `manage.py createsuperuser`."
    )
    assert every_table() == before
