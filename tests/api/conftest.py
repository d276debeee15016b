import pytest

from tests.support import deliveries
from tests.support.users import make_user


@pytest.fixture
def customer(db):
    return make_user("carol")


@pytest.fixture
def staff(db):
    """Staff who may read the dead letters (``outbox.view_delivery``), without the permission to retry them."""
    return make_user("sam", staff=True, perms=("outbox.view_delivery",))


@pytest.fixture
def dlq_operator(db):
    """Staff allowed to retry and discard dead letters."""
    return make_user("olga", staff=True, perms=("outbox.retry_delivery",))


@pytest.fixture
def make_delivery(db):
    return deliveries.make_delivery
