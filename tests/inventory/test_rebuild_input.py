"""``inventory_rebuild`` given SKUs no product has: exit code 2, one line saying which, and nothing rebuilt."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inventory.models import StockItem
from tests.factories import make_product
from tests.support.commands import manage
from tests.support.database import every_table


@pytest.mark.django_db
@pytest.mark.parametrize("check", [False, True], ids=["rebuild", "check"])
def test_an_unknown_sku_stops_the_command_before_any_sku_is_rebuilt_or_checked(check):
    # given a product whose projection drifted, named before a SKU nobody has
    drifted = make_product(on_hand=4)
    StockItem.objects.filter(sku=drifted.sku).update(on_hand=40)
    out = StringIO()
    # when
    with pytest.raises(CommandError) as refused:
        call_command("inventory_rebuild", drifted.sku, "NO-SUCH-SKU", *["--check"] * check, stdout=out)
    # then
    assert refused.value.returncode == 2
    assert str(refused.value) == "No product has SKU 'NO-SUCH-SKU': nothing was rebuilt or checked."
    assert StockItem.objects.get(sku=drifted.sku).on_hand == 40
    assert out.getvalue() == ""


@pytest.fixture
def drifted(transactional_db, no_live_outbox):
    """A product whose projection drifted, committed for a command run from the shell to see (no relay about)."""
    product = make_product(on_hand=4)
    StockItem.objects.filter(sku=product.sku).update(on_hand=40)
    return product


def test_run_from_the_shell_unknown_skus_exit_2_with_one_line_and_nothing_changes(drifted):
    before = every_table()
    # when
    result = manage("inventory_rebuild", drifted.sku, "NO-SUCH-SKU", "NOR-THIS")
    # then
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "CommandError: No product has SKU 'NO-SUCH-SKU', 'NOR-THIS': nothing was rebuilt or checked."
    ]
    assert result.stdout == ""
    assert every_table() == before


def test_run_from_the_shell_an_unknown_flag_exits_2_naming_it_and_nothing_changes(drifted):
    before = every_table()
    result = manage("inventory_rebuild", "--chek")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "manage.py inventory_rebuild: error: unrecognized arguments: --chek"
    assert every_table() == before
