import pytest

from tests.support import deliveries


@pytest.fixture
def make_delivery(db):
    return deliveries.make_delivery
