import pytest

from inventory.checks import snapshot_interval


@pytest.mark.parametrize("every", [0, -5, "50"])
def test_a_snapshot_interval_that_is_not_a_positive_whole_number_stops_start_up(settings, every):
    settings.INVENTORY_SNAPSHOT_EVERY = every
    [error] = snapshot_interval(None)
    assert error.id == "inventory.E001"
    assert "INVENTORY_SNAPSHOT_EVERY" in error.msg


def test_the_default_interval_passes(settings):
    assert settings.INVENTORY_SNAPSHOT_EVERY == 50
    assert snapshot_interval(None) == []
